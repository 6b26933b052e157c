"""The live service: the same scheduling core behind an HTTP API, a database and executors.

Modules (ADR 0002): ``settings`` (configuration), ``db`` (tables, engines), ``migrations``
(Alembic: the only way the schema is made), ``store`` (repository functions; every write that
accepts an event writes its inbox row in the same transaction), ``auth`` (tokens, roles, who
may see what), ``tenancy`` (the tenant tree and allocations as the core sees them),
``budget`` (GPU-hour budgets of allocations), ``usage`` (GPU-hours and effective GPU-hours),
``loop`` (inbox -> ``Scheduler.handle`` -> one transaction -> executors), ``rebuild`` (the core
from the database on start), ``metrics`` (Prometheus), ``runtime`` (all of it started and
stopped together), ``api`` (FastAPI routers, one per noun), ``executors`` (enacting decisions).
"""
