"""Where the client finds its server and token: the environment, then the config file.

This module owns ``ClientConfig`` and its file, ``~/.config/gpupool/config.toml`` (or
``$XDG_CONFIG_HOME/gpupool/config.toml``; ``$GPUPOOL_CONFIG`` names another file), which
``gpupool login`` writes::

    url = "http://127.0.0.1:8080"
    token = "gp_..."

``GPUPOOL_URL`` and ``GPUPOOL_TOKEN`` override the file, so that CI and scripts need no file.
The file holds a secret: it is written with mode 0600, atomically.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gpupool.client.errors import NotConfigured

__all__ = ["DEFAULT_URL", "ClientConfig", "config_path"]

#: Where ``gpupool serve`` listens by default.
DEFAULT_URL = "http://127.0.0.1:8080"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file in force for ``env`` (default: this process's environment)."""
    e = os.environ if env is None else env
    if e.get("GPUPOOL_CONFIG"):
        return Path(e["GPUPOOL_CONFIG"])
    base = Path(e["XDG_CONFIG_HOME"]) if e.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "gpupool" / "config.toml"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A server URL and a token (empty when none is known)."""

    url: str = DEFAULT_URL
    token: str = ""

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> ClientConfig:
        """The environment's values over the file's; a missing file is no error."""
        e = os.environ if env is None else env
        path = config_path(e)
        data: dict[str, object] = {}
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise NotConfigured(f"{path}: not a valid config file ({err})") from None
        url = e.get("GPUPOOL_URL") or str(data.get("url") or DEFAULT_URL)
        token = e.get("GPUPOOL_TOKEN") or str(data.get("token") or "")
        return cls(url=url.rstrip("/"), token=token)

    def require_token(self) -> str:
        if not self.token:
            raise NotConfigured("no token: run `gpupool login` or set GPUPOOL_TOKEN")
        return self.token

    def save(self, env: Mapping[str, str] | None = None) -> Path:
        """Write the file (mode 0600, replacing it atomically); returns its path."""
        path = config_path(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        # JSON strings are valid TOML basic strings for the printable text a URL or token holds.
        text = f"url = {json.dumps(self.url)}\ntoken = {json.dumps(self.token)}\n"
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return path
