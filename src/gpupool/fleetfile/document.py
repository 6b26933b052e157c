"""Reading a YAML or TOML document and reporting what is wrong with it, and where.

This module owns ``FleetFileError`` (the one error every loader in this package raises) and the
plumbing the loaders share: parse a file by its extension, validate it against a pydantic
schema, and turn a pydantic error location into a document path such as
``sites[1].clusters[0].blocks[2].racks[0].nodes.model`` plus, for YAML, a line number.
It knows nothing about fleets or tenants.

Line numbers are found only when an error is reported (the document is composed a second time
into YAML nodes, which carry ``start_mark``), so a good file pays nothing for them.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

YAML_SUFFIXES = (".yaml", ".yml")
TOML_SUFFIXES = (".toml",)

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class FleetFileError(ValueError):
    """A catalogue, fleet or tenants file that cannot be used.

    ``path`` is the file, ``location`` the place in the document (``""`` for the whole
    document), ``line`` the 1-based YAML line when known, ``message`` what is wrong.
    """

    def __init__(self, path: str, location: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.location = location
        self.message = message
        self.line = line
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {location}: {message}" if location else f"{where}: {message}")


class StrictSpec(BaseModel):
    """Base of every file schema: unknown keys are errors (typos must not pass silently) and
    values are not coerced (``gpus: "8"`` is a mistake, not an 8)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _NoDuplicatesLoader(yaml.SafeLoader):
    """A safe loader that rejects a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is written twice in this mapping (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_document(path: Path) -> dict[str, Any]:
    """Parse ``path`` as YAML or TOML (by extension); the top level must be a mapping.

    Top-level keys starting with ``x-`` are dropped, as in docker-compose: they hold YAML
    anchors and notes that the schema need not know about.
    """
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + TOML_SUFFIXES:
        raise FleetFileError(str(path), "", f"unknown file type {suffix!r} (expected .yaml, .yml or .toml)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FleetFileError(str(path), "", f"cannot read the file: {e.strerror or e}") from None
    data: object
    if suffix in TOML_SUFFIXES:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise FleetFileError(str(path), "", f"not valid TOML: {e}") from None
    else:
        try:
            data = yaml.load(text, Loader=_NoDuplicatesLoader)  # a SafeLoader subclass: safe
        except yaml.MarkedYAMLError as e:
            line = e.problem_mark.line + 1 if e.problem_mark is not None else None
            problem = e.problem or str(e)
            raise FleetFileError(str(path), "", f"not valid YAML: {problem}", line) from None
        except yaml.YAMLError as e:
            raise FleetFileError(str(path), "", f"not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise FleetFileError(str(path), "", "the document must be a mapping at the top level")
    return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}


def resolve_path(path_or_preset: str, preset_dir: Path, presets: list[str], what: str) -> Path:
    """A file path as given, or the file of a named preset; a clear error for neither."""
    candidate = Path(path_or_preset)
    looks_like_file = (
        candidate.suffix.lower() in YAML_SUFFIXES + TOML_SUFFIXES
        or "/" in path_or_preset
        or "\\" in path_or_preset
        or candidate.is_file()
    )
    if looks_like_file:
        return candidate
    if path_or_preset in presets:
        return preset_dir / f"{path_or_preset}.yaml"
    close = difflib.get_close_matches(path_or_preset, presets, n=1)
    raise FleetFileError(
        path_or_preset,
        "",
        f"no such {what} file or preset"
        + (f" (did you mean {close[0]!r}?)" if close else "")
        + f"; presets: {', '.join(presets)}",
    )


def validate(schema: type[M], data: dict[str, Any], path: Path) -> M:
    """Validate ``data`` against ``schema``; the first problem becomes a ``FleetFileError``."""
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # A typo'd key shows up twice: as an unknown key and as the required key now missing.
        # The unknown key is the cause, so report it first.
        first = min(errors, key=lambda err: 0 if err["type"] == "extra_forbidden" else 1)
        loc = tuple(first["loc"])
        message = _explain(first, schema, loc)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise error_at(path, data, loc, message) from None


def error_at(path: Path, data: object, loc: Loc, message: str) -> FleetFileError:
    """A ``FleetFileError`` for the document place ``loc`` (a pydantic-style location)."""
    doc_loc = document_loc(data, loc)
    return FleetFileError(str(path), format_loc(doc_loc), message, line_of(path, doc_loc))


def document_loc(data: object, loc: Loc) -> Loc:
    """Map a schema location onto the document as written.

    Schemas accept a single mapping where a list is expected (``nodes: {count: 4, ...}``);
    pydantic then reports ``nodes.0.model``, but the document has no index there.
    """
    out: list[str | int] = []
    cur: object = data
    for part in loc:
        if isinstance(part, int) and isinstance(cur, dict):
            continue  # the single-mapping shorthand: there is no list to index
        out.append(part)
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        else:
            cur = None
    return tuple(out)


_PLAIN_KEY = re.compile(r"^[^\s.\[\]\"']+$")


def format_loc(loc: Sequence[str | int]) -> str:
    """``('sites', 1, 'clusters', 0, 'name')`` -> ``sites[1].clusters[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def line_of(path: Path, loc: Loc) -> int | None:
    """The 1-based YAML line of the document place ``loc`` (its nearest existing ancestor)."""
    if path.suffix.lower() not in YAML_SUFFIXES:
        return None
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    nxt = v
                    # A scalar value sits on the key's line; point at the key for clarity.
                    line = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def _explain(err: Any, schema: type[BaseModel], loc: Loc) -> str:
    """A human message for one pydantic error (what is wrong, and what would be right)."""
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(schema, loc[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?" if close else " ("
            hint += f"{' ' if close else ''}allowed: {', '.join(allowed)})"
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return "this key is required but missing"
    got = err.get("input")
    msg = str(err["msg"])
    msg = msg.replace("Input should", "should", 1) if msg else kind
    if isinstance(got, dict | list):
        return f"{msg} (got a {type(got).__name__})"
    return f"{msg} (got {got!r})"


def _allowed_keys(schema: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the schema allows at ``loc``, found by walking the schema's type annotations."""
    tp: Any = schema
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _field_named(tp, str(part))
            if field is None:
                return []
            tp = field
        elif typing.get_origin(tp) in (list, tuple):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (list, tuple):
        tp = _unwrap(typing.get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(_keys_of(tp))
    return []


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the interesting type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = (models or members)[0]
        else:
            return tp


def _field_named(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        aliases = _aliases(name, info)
        if key in aliases:
            return info.annotation
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    out: list[str] = []
    for name, info in model.model_fields.items():
        out.extend(_aliases(name, info))
    return out


def _aliases(name: str, info: Any) -> list[str]:
    va = info.validation_alias
    if va is None:
        return [info.alias or name]
    choices = getattr(va, "choices", None)
    if choices is not None:
        return [c for c in choices if isinstance(c, str)]
    return [str(va)]
