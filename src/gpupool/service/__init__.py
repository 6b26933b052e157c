"""The live service: the same scheduling core behind an HTTP API, a database and executors.

Modules (ADR 0002): ``settings`` (configuration), ``db`` (tables, engines), ``migrations``
(Alembic: the only way the schema is made), ``store`` (repository functions; every write that
accepts an event writes its inbox row in the same transaction), ``auth`` (tokens, roles, who
may see what), ``tenancy`` (the tenant tree and allocations as the core sees them),
``budget`` (GPU-hour budgets of allocations), ``usage`` (GPU-hours and effective GPU-hours),
``directory`` (cached callers, tenants and allocations for the request path), ``loop``
(the driver of ``intake`` -> ``Scheduler.handle`` -> ``journal``, one transaction ->
``dispatch`` to executors; ADR 0012), ``job_spec`` (the typed stored job), ``job_status``
(``JobStatus``), ``allocation_index`` (core and service allocation ids), ``event_codec`` (the event
log's lossless JSON form), ``replay`` (the event log back through a fresh core), ``rebuild``
(the core from the database on start), ``metrics`` (Prometheus), ``runtime`` (all of it
started and stopped together), ``dry_run`` (the executor that runs nothing), ``api`` (FastAPI
routers, one per noun), ``executors`` (enacting decisions), ``log_files`` (where an
allocation's output goes, read by the API and written by executors), ``sampler`` (the
dashboard's time series) and ``whatif`` (digital-twin runs started from the dashboard).
"""
