"""The command line's end of a sign-in with OpenID Connect: a one-shot loopback receiver.

This module owns ``LoopbackReceiver`` (RFC 8252's loopback redirect, for a command line):
it listens on 127.0.0.1 on a free port, makes the URL of the service's
``/v1/auth/oidc/login`` that names that port and a random state, and waits until the
service's sign-in page posts back a token with that state (the person presses its button).
A post with another state (someone else's sign-in, or a forged one) is refused and the
receiver keeps waiting; the token is never in a URL.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode

__all__ = ["LoopbackReceiver"]

#: the sign-in page's form is small; anything bigger is not it
MAX_BODY = 16_384
_DONE = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>gpupool</title></head>"
    b"<body><h1>Signed in</h1><p>The gpupool command line has your token. You can close this tab."
    b"</p></body></html>"
)


class LoopbackReceiver:
    """Receives one token on 127.0.0.1:<port> (use as a context manager)."""

    def __init__(self) -> None:
        self.state = secrets.token_urlsafe(32)
        self.token: str | None = None
        self._got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 < length <= MAX_BODY:
                    self._answer(400, b"not a gpupool sign-in")
                    return
                form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                state = (form.get("state") or [""])[0]
                token = (form.get("token") or [""])[0]
                if not token or not hmac.compare_digest(state.encode(), receiver.state.encode()):
                    self._answer(400, b"not the sign-in this command line started")
                    return
                receiver.token = token
                self._answer(200, _DONE)
                receiver._got.set()

            def do_GET(self) -> None:
                self._answer(404, b"the gpupool command line waits for its sign-in page's form")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the terminal shows the command's own messages only

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def login_url(self, base: str) -> str:
        query = urlencode({"cli_port": self.port, "cli_state": self.state})
        return f"{base.rstrip('/')}/v1/auth/oidc/login?{query}"

    def wait(self, timeout_s: float) -> str | None:
        """The token, or None when none came within ``timeout_s``."""
        self._got.wait(timeout_s)
        return self.token

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
