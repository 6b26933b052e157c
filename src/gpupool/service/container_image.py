"""A job's container image: the reference a client gives, parsed and checked, and the image policy.

This module owns ``ImageRef`` (what ``JobRequest.image`` / ``gpupool submit --image`` name),
``parse_image`` (a clear ``ValueError`` for a bad reference: the API answers 422 naming
``image``), and the per-tenant image policy (``allowed_registries``, inherited down the tenant
tree like ``allowed_classes``; ``effective_registries``, ``registry_allowed``).

Two kinds of reference (ADR 0013):

- an OCI/Docker reference ``[host[:port]/]path[:tag][@sha256:<64 hex>]``; its registry is the
  host, ``docker.io`` when the first component is not one (no ``.``, ``:`` nor ``localhost``),
  as Docker and Podman read it;
- a local image file: ``oci-archive:/abs/path.tar`` or ``docker-archive:/abs/path.tar`` (what
  ``podman save`` writes). Its "registry" is ``local``: a policy that allows ``local`` lets a
  tenant run image files from the shared file system. The job's account must be able to read
  the file: the runtime reads it as that account, so Unix permissions rule.

Nothing here touches the database or runs a container.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ARCHIVE_TRANSPORTS",
    "IMAGE_HELP",
    "LOCAL",
    "ImageRef",
    "check_registries",
    "effective_registries",
    "image_field",
    "parse_image",
    "registries_field",
    "registry_allowed",
]

#: The registry name of a local image file, in policies.
LOCAL = "local"
#: Transports of a local image file, as Podman's ``run`` reads them.
ARCHIVE_TRANSPORTS = ("oci-archive", "docker-archive")
DEFAULT_REGISTRY = "docker.io"

# The distribution reference grammar (github.com/distribution/reference), lower-case paths.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?"
_REFERENCE = re.compile(
    rf"^(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
#: A registry pattern in a policy: a host (``nvcr.io``, ``registry.example.kr:5000``), or ``local``.
_REGISTRY = re.compile(rf"^(?:{_HOST})$")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed image reference. ``registry`` is ``local`` for an image file."""

    text: str
    registry: str
    #: for an image file: its transport and absolute path; empty for a registry image
    transport: str = ""
    path: str = ""
    #: for a registry image: the reference without its registry host (``nvidia/pytorch:24.01``)
    name: str = ""

    @property
    def local(self) -> bool:
        return self.registry == LOCAL

    def pyxis(self) -> str:
        """The reference as pyxis/enroot's ``--container-image`` wants it (``host#path:tag``)."""
        if self.local:
            raise ValueError("a local image file is not a registry image")
        return self.text if self.name == self.text else f"{self.registry}#{self.name}"


def parse_image(text: str) -> ImageRef:
    """``text`` as an ``ImageRef``; ``ValueError`` saying what is wrong otherwise."""
    if not text or len(text) > 1024:
        raise ValueError("an image reference has 1 to 1024 characters")
    if any(c.isspace() for c in text) or "\x00" in text:
        raise ValueError("an image reference holds no spaces")
    transport, sep, rest = text.partition(":")
    if sep and transport in ARCHIVE_TRANSPORTS:
        if not rest.startswith("/") or "/../" in rest + "/" or rest.endswith("/"):
            raise ValueError(
                f"{transport}: needs an absolute path to an image file, e.g. {transport}:/data/image.tar"
            )
        return ImageRef(text, LOCAL, transport, rest)
    m = _REFERENCE.match(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not an image reference ([registry/]name[:tag][@sha256:digest], lower-case name) "
            f"nor a local image file ({' or '.join(t + ':/path' for t in ARCHIVE_TRANSPORTS)})"
        )
    host = m["host"]
    if host is not None and "." not in host and ":" not in host and host != "localhost":
        host = None  # "library/ubuntu": a path, not a host
    name = text[len(host) + 1 :] if host is not None else text
    return ImageRef(text, (host or DEFAULT_REGISTRY).lower(), name=name)


IMAGE_HELP = (
    "Container image: [registry/]name[:tag][@sha256:digest], or a local image file "
    "oci-archive:/path or docker-archive:/path (null: the executor's own environment)"
)


def image_field(cls: object, v: str | None) -> str | None:
    """``JobRequest.image``'s validator: parses, so that a bad reference is a 422 naming it."""
    if v is not None:
        parse_image(v)
    return v


def check_registries(values: Sequence[str]) -> list[str]:
    """A policy's list, checked (``ValueError`` naming the bad entry); lower-cased, deduplicated."""
    out: list[str] = []
    for v in values:
        if v != LOCAL and not _REGISTRY.match(v):
            raise ValueError(
                f"{v!r} is not a registry host (e.g. nvcr.io, registry.example.kr:5000) nor {LOCAL!r}"
            )
        if v.lower() not in out:
            out.append(v.lower())
    return out


def registries_field(cls: object, v: list[str] | None) -> list[str] | None:
    """``allowed_registries``' validator in the tenants API (422 naming the bad entry)."""
    return None if v is None else check_registries(v)


def registry_allowed(ref: ImageRef, allowed: frozenset[str] | None) -> bool:
    """Whether ``ref`` may run under a policy (``None``: no policy, every registry)."""
    return allowed is None or ref.registry in allowed


class _Row(Protocol):
    id: int
    parent_id: int | None
    allowed_registries: list[str] | None


def effective_registries(rows: Iterable[_Row]) -> dict[int, frozenset[str] | None]:
    """Each tenant's allowed registries by id: its own list, else its parent's, ``None`` (all)
    at the top of the tree; give the rows parents first (as ``tenant_rows`` does)."""
    out: dict[int, frozenset[str] | None] = {}
    for r in rows:
        own = r.allowed_registries
        inherited = out.get(r.parent_id) if r.parent_id is not None else None
        out[r.id] = frozenset(own) if own is not None else inherited
    return out


def narrower_than(wanted: Sequence[str], parent: frozenset[str] | None) -> list[str]:
    """The entries of ``wanted`` its parent's policy does not allow (empty: it may have it)."""
    return [] if parent is None else [w for w in wanted if w not in parent]


def describe(allowed: frozenset[str] | None) -> str:
    """A policy for messages."""
    if allowed is None:
        return "every registry"
    return ", ".join(sorted(allowed)) or "no image at all"
