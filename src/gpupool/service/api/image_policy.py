"""The image policy at the API: which container registries a tenant's jobs may use (ADR 0013).

This module owns the two checks on ``allowed_registries`` (``container_image`` parses and
inherits it): a submission whose image comes from a registry its project's policy does not
allow is refused with 403 naming the image's registry and the registries allowed, and a
tenant's policy may only narrow its parent's (403 for an admin, 422 for a pool admin, like the
tree's other rules). The submission path reads the tenant rows only for a job that names an
image; a job without one costs nothing here.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpupool.service.api.problems import ApiProblem, invalid
from gpupool.service.auth import Caller
from gpupool.service.container_image import (
    describe,
    effective_registries,
    narrower_than,
    parse_image,
    registry_allowed,
)
from gpupool.service.db import TenantRow
from gpupool.service.tenant_tree import tenant_rows

__all__ = ["check_image", "check_image_policy"]


def check_image(s: Session, project_id: int, project_path: str, image: str | None) -> None:
    """403 if ``image`` may not run in the project (its policy, inherited from above)."""
    if image is None:
        return
    ref = parse_image(image)  # checked by the request's schema already
    allowed = effective_registries(tenant_rows(s)).get(project_id)
    if not registry_allowed(ref, allowed):
        raise ApiProblem(
            403,
            f"image {image!r} comes from registry {ref.registry!r}, which project {project_path} may not "
            f"use (allowed: {describe(allowed)}); an admin above the project sets allowed_registries",
            kind="image-not-allowed",
            errors=[("image", f"registry {ref.registry!r} is not allowed in {project_path}")],
        )


def check_image_policy(
    s: Session, caller: Caller, path: str, parent: TenantRow | None, wanted: list[str] | None
) -> None:
    """A tenant's own policy must lie within its parent's (null inherits it: always fine)."""
    if wanted is None or parent is None:
        return
    allowed = effective_registries(tenant_rows(s)).get(parent.id)
    wider = narrower_than(wanted, allowed)
    if not wider:
        return
    why = f"{', '.join(wider)} not allowed to its parent {parent.path} (which allows {describe(allowed)})"
    if caller.is_pool_admin:
        raise invalid("allowed_registries", why)
    raise ApiProblem(
        403, f"allowed_registries of {path}: {why}", kind="forbidden", errors=[("allowed_registries", why)]
    )
