"""``/v1/dashboard/*`` and ``/v1/whatif``: what the web dashboard needs beyond the core API.

This package owns the read models the dashboard draws and the API alone cannot give without
shipping the whole database to the browser, one module for each:

- ``session``: who the caller is and what they may do (computed with the same ``Caller``
  rules as the routes, so the UI never offers what the API would refuse);
- ``occupancy`` (``fleet``): occupancy aggregated per site, cluster, model, network block and,
  for one block, per rack and node (a national fleet has tens of thousands of nodes: the
  browser gets the level it shows);
- ``series``: queue depth, busy accelerators and loop cycle time over time
  (``gpupool.service.sampler``);
- ``queue`` (``jobs``): the queue, filtered (tenant subtree, project, user, accelerator model,
  state), sorted (submission, estimated start, start, priority, size) and cursor-paginated by
  keyset, so the 100,000th job costs what the first does; each row says whether the caller
  may cancel it;
- ``job_detail`` (``jobs/{id}``): a job's timeline (from its usage intervals, one per attempt),
  its placement in the topology, and GPU telemetry where the executor recorded some;
- ``tenant_usage`` (``tenants``) and ``burndown``: the tenant tree with guarantees,
  accelerators in use and usage, and allocation burn-down in GPU-hours and effective GPU-hours;
- ``whatif`` (``/v1/whatif``): simulations in the background (``gpupool.service.whatif``), for
  viewers and pool admins only, bounded in size and time.

Visibility is the API's: members see their projects' jobs and usage; viewers and pool admins
see everything; an object the caller may not see is a 404.

This module owns ``install``: the routes, and the series sampler and what-if runs that live
as long as the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI

from gpupool.service.api.dashboard import (
    burndown,
    job_detail,
    occupancy,
    queue,
    series,
    session,
    tenant_usage,
    whatif,
)
from gpupool.service.runtime import Runtime
from gpupool.service.sampler import SeriesSampler
from gpupool.service.whatif import WhatIfRuns

#: in this order: it is the order of the routes in the OpenAPI document
ROUTERS = (session, occupancy, series, queue, job_detail, tenant_usage, burndown, whatif)


def install(app: FastAPI) -> None:
    """Add these routes, the series sampler and the what-if runs to ``app``.

    The sampler runs while the app serves: the app's lifespan is wrapped so that it starts
    after the service's own start-up and stops (and what-if runs are ended) before its
    shutdown.
    """
    rt = cast(Runtime, app.state.runtime)
    interval_s = series.sample_interval_s()
    app.state.dashboard_sampler = SeriesSampler(rt.metrics.registry, rt.clock, interval_s=interval_s)
    app.state.dashboard_whatif = WhatIfRuns(rt.settings.data_dir / "whatif")
    for module in ROUTERS:
        app.include_router(module.router)
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            app.state.dashboard_sampler.start()
            try:
                yield state
            finally:
                app.state.dashboard_sampler.stop()
                app.state.dashboard_whatif.close()

    app.router.lifespan_context = lifespan
