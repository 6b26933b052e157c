"""The gpupool HTTP client: talk to a gpupool server's ``/v1`` API from Python.

``api`` holds ``GpupoolClient``, ``config`` where the server URL and token come from, and
``errors`` the exception tree. Example::

    from gpupool.client import GpupoolClient

    with GpupoolClient.from_config() as c:
        job = c.submit({"project": "academia/snu/nlp", "gpus": 2, "command": ["python", "train.py"]}).job
        print(c.explain(job["id"]))
"""

from gpupool.client.api import GpupoolClient, Submitted, page_items
from gpupool.client.config import DEFAULT_URL, ClientConfig, config_path
from gpupool.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    ConnectionFailed,
    FieldError,
    Forbidden,
    NotConfigured,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "BadRequest",
    "ClientConfig",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "FieldError",
    "Forbidden",
    "GpupoolClient",
    "NotConfigured",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Submitted",
    "Unauthorized",
    "config_path",
    "page_items",
]
