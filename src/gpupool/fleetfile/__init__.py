"""File formats and presets: the accelerator catalogue, fleet files and tenant files.

This package owns reading these files (YAML or TOML) and the presets shipped in
``gpupool/data`` (fleets ``demo``, ``korea-2025``, ``philly``, ``gavel-108``; tenants to match).
It does the I/O that ``gpupool.core`` must not: it validates a document against a strict schema,
reports any problem as one ``FleetFileError`` naming the file, the place in the document
(``sites[1].clusters[0].blocks[2].racks[0].nodes.model``) and, for YAML, the line, and builds the
core's immutable ``Catalogue``, ``Fleet`` and ``Tenancy`` through the core's builders. It never
returns anything half-loaded.

Modules: ``document`` (parsing, error locations), ``catalogue``, ``fleet_file``, ``tenants_file``.
"""

from gpupool.fleetfile.catalogue import extend_catalogue, load_catalogue, site_catalogue
from gpupool.fleetfile.document import FleetFileError
from gpupool.fleetfile.fleet_file import fleet_presets, load_fleet
from gpupool.fleetfile.tenants_file import default_tenants_for, load_tenants, tenant_presets

__all__ = [
    "FleetFileError",
    "default_tenants_for",
    "extend_catalogue",
    "fleet_presets",
    "load_catalogue",
    "load_fleet",
    "load_tenants",
    "site_catalogue",
    "tenant_presets",
]
