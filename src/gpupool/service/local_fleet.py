"""Serving this machine: its own GPUs (NVML) or a number of pretend ones, as a one-node fleet.

This module owns ``machine_scenario``: for ``GPUPOOL_MACHINE=real`` (``gpupool serve
--real-gpus``) the ``LocalMachine`` that NVML discovers, for ``simulated`` (``--simulated-gpus
N``) one with N pretend accelerators; the fleet is that machine (``LocalMachine.fleet``: one
site, one cluster, one node per GPU model), so a placement names a node this machine has and
the local executor pins the job to the very devices. Served with the demo fleet instead, a
real GPU job was refused with "node ... is not this machine".

Unless a tenants file is given, the tenancy is one project, ``local/machine/default``, whose
member is the user running the service (so that a token minted for them can submit at once).
"""

from __future__ import annotations

import getpass
import re

from gpupool.core.fleet import Fleet
from gpupool.core.tenancy import Tenancy, TenancyBuilder
from gpupool.fleetfile import load_tenants
from gpupool.service.executors.gpus import LocalMachine, local_machine
from gpupool.service.settings import ServiceSettings

#: the default tenancy's one project
DEFAULT_PROJECT = "local/machine/default"
_USER = re.compile(r"[^A-Za-z0-9._@-]")


def machine_user() -> str:
    """The member of the default project: the login name, as a valid user name."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    name = _USER.sub("-", name).lstrip("._@-")[:64]
    return name if name and name != "admin" else "operator"  # "admin" is the pool admin's


def default_tenancy(fleet: Fleet, member: str) -> Tenancy:
    """One sector > organisation > project, the project with ``member`` in it."""
    sector, org, project = DEFAULT_PROJECT.split("/")
    b = TenancyBuilder("local")
    s = b.add(-1, sector, name="This machine", kind="sector")
    o = b.add(s, org, name="This machine", kind="organisation")
    b.add(o, project, name="Default project", kind="project", members=[member])
    return b.build(capacity_by_model=fleet.gpus_by_model())


def machine_scenario(settings: ServiceSettings) -> tuple[Fleet, Tenancy, LocalMachine]:
    """The machine the settings ask for, its fleet, and the tenancy to seed an empty database."""
    gpus = settings.machine_gpus if settings.machine == "simulated" else 0
    if settings.machine == "simulated" and gpus < 1:
        raise ValueError("a simulated machine needs machine_gpus >= 1 (--simulated-gpus N)")
    machine = local_machine(gpus, settings.machine_model or None)
    fleet = machine.fleet()  # FleetError on a machine where NVML finds no GPU
    tenancy = (
        load_tenants(settings.tenants, fleet) if settings.tenants else default_tenancy(fleet, machine_user())
    )
    return fleet, tenancy, machine
