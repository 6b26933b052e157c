"""Connection limits, timeouts and TLS of a real ``gpupool serve``, tried with raw sockets.

Headers past ``--max-header-bytes`` (a megabyte of them was accepted before) get 431 and a
closed connection; a request that trickles in (slowloris: headers or body) or a connection
that sends nothing gets 408 and is closed once ``--request-read-timeout`` has passed, and the
app never sees the request; an idle keep-alive connection is closed after
``--keep-alive-timeout``; requests within the limits are served as before. With
``--tls-cert/--tls-key`` the server speaks HTTPS with a self-signed certificate made here,
verified by an httpx client that trusts only it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.live_server import LiveServer

pytestmark = pytest.mark.slow
READ_TIMEOUT_S = 1.5
MAX_HEADERS = 16 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = LiveServer.start(
        tmp_path_factory.mktemp("limits") / "data",
        "--request-read-timeout", str(READ_TIMEOUT_S), "--keep-alive-timeout", "1",
        "--max-header-bytes", str(MAX_HEADERS),
        env={"GPUPOOL_EXECUTOR": "none"},
    )  # fmt: skip
    try:
        yield s
    finally:
        s.stop()


def _connect(srv: LiveServer) -> socket.socket:
    host, port = srv.url.rsplit("/", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def _read_response(sock: socket.socket) -> bytes:
    """One whole response on a kept-alive connection: its head, then Content-Length bytes
    (one ``recv`` may hold only part of it)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            return raw
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return raw


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def _request(headers: str = "", path: str = "/v1/health") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n".encode()


def test_a_megabyte_of_headers_gets_431(srv: LiveServer) -> None:
    many = "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(1000))  # ~1 MB, many headers
    one = f"X-Big: {'b' * (MAX_HEADERS + 10)}\r\n"  # one header past the limit
    long_url = "/v1/health?" + "q" * (MAX_HEADERS + 10)
    for raw in (_request(many), _request(one), _request(path=long_url)):
        with _connect(srv) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(raw)  # the server may close before all of it is sent
            got = _read_all(sock)
        assert _status(got) == 431, got[:300]
        assert b"application/problem+json" in got and b"larger than 16384 bytes" in got
    with _connect(srv) as sock:  # just under the limit: served
        sock.sendall(_request(f"X-Ok: {'c' * (MAX_HEADERS - 200)}\r\n"))
        assert _status(_read_all(sock)) == 200


def test_slow_headers_and_slow_bodies_get_408(srv: LiveServer) -> None:
    # headers that trickle in, a byte every 0.2 s: each byte would reset an idle timer
    with _connect(srv) as sock:
        began = time.monotonic()
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n")
        got = b""
        sock.settimeout(0.2)
        while time.monotonic() - began < 10:
            try:
                sock.sendall(b"X")
                got += sock.recv(65536)
                if got:
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        took = time.monotonic() - began
    assert _status(got) == 408, got[:300]
    assert READ_TIMEOUT_S - 0.1 <= took <= READ_TIMEOUT_S + 3, took
    # a body announced and never sent: the submission never reaches the app
    with httpx.Client(base_url=srv.url) as c:
        before = c.get("/v1/jobs", headers={"Authorization": f"Bearer {srv.admin}"}).json()["items"]
    with _connect(srv) as sock:
        began = time.monotonic()
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {srv.admin}\r\nContent-Length: 500\r\n\r\n".encode()
            + b'{"project": "vision", '
        )
        got = _read_all(sock)
        took = time.monotonic() - began
    assert _status(got) == 408 and took <= READ_TIMEOUT_S + 3, (got[:300], took)
    with httpx.Client(base_url=srv.url) as c:
        after = c.get("/v1/jobs", headers={"Authorization": f"Bearer {srv.admin}"}).json()["items"]
    assert after == before


def test_a_silent_connection_is_closed(srv: LiveServer) -> None:
    with _connect(srv) as sock:
        began = time.monotonic()
        got = _read_all(sock)
        assert time.monotonic() - began <= READ_TIMEOUT_S + 3
    assert got == b"" or _status(got) == 408


def test_idle_keep_alive_is_closed_and_normal_requests_are_served(srv: LiveServer) -> None:
    with _connect(srv) as sock:
        for _ in range(3):  # keep-alive: several requests on one connection
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.settimeout(10)
            assert _status(_read_response(sock)) == 200
        began = time.monotonic()
        assert _read_all(sock) == b""  # then idle: closed after the keep-alive timeout
        assert time.monotonic() - began <= 5
    # a submission whose body arrives in a few pieces, within the deadline, is served
    body = b'{"project": "vision", "command": ["true"], "gpus": 1}'
    token = httpx.post(f"{srv.url}/v1/tokens", json={"user": "minjun.kim"},
                       headers={"Authorization": f"Bearer {srv.admin}"}).json()["token"]  # fmt: skip
    with _connect(srv) as sock:  # the read deadline runs from here
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        for i in range(0, len(body), 20):
            time.sleep(0.1)
            sock.sendall(body[i : i + 20])
        assert _status(_read_all(sock)) == 201


def _self_signed(where: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpupool test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    srv = LiveServer.start(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key),
                           env={"GPUPOOL_EXECUTOR": "none"}, scheme="https", verify=trust)  # fmt: skip
    try:
        with srv.client() as c:
            me = c.get("/v1/users/me")
            assert me.status_code == 200 and me.json()["role"] == "pool-admin"
            assert c.get("/v1/ready").json()["status"] == "ready"
        assert "https://127.0.0.1:" in srv.log()
        # the gpupool client trusts a private CA through SSL_CERT_FILE (httpx reads it)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GPUPOOL_URL": srv.url,
               "GPUPOOL_TOKEN": srv.admin, "SSL_CERT_FILE": str(cert)}  # fmt: skip
        cli = [sys.executable, "-c", "from gpupool.cli.main import app; app()", "queue", "--json"]
        q = subprocess.run(cli, capture_output=True, text=True, timeout=60, env=env)
        assert q.returncode == 0, q.stderr
        json.loads(q.stdout)
        with pytest.raises(httpx.ConnectError):  # not trusted by the system's CAs
            httpx.get(f"{srv.url}/v1/health", timeout=10)
        plain = srv.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
            httpx.get(f"{plain}/v1/health", timeout=10)
    finally:
        srv.stop()


def test_tls_needs_both_files(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", "from gpupool.cli.main import app; app()", "serve",
         "--data-dir", str(tmp_path), "--tls-cert", str(tmp_path / "nothing.pem")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "tls_key" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    """A client cannot slip past the per-address limit by claiming addresses; a trusted proxy can."""
    env = {"GPUPOOL_EXECUTOR": "none", "GPUPOOL_RATE_LIMIT_ADDRESS_PER_S": "0.01",
           "GPUPOOL_RATE_LIMIT_ADDRESS_BURST": "3"}  # fmt: skip
    for trusted in (False, True):
        args = ("--forwarded-allow-ips", "127.0.0.1") if trusted else ()
        srv = LiveServer.start(tmp_path / f"data-{trusted}", *args, env=env, ready_s=120)
        try:
            with httpx.Client(base_url=srv.url, timeout=10) as c:
                claimed = [c.get("/v1/health", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
                           for i in range(1, 6)]  # fmt: skip
                same = [c.get("/v1/health", headers={"X-Forwarded-For": "10.9.9.9"}).status_code
                        for _ in range(5)]  # fmt: skip
        finally:
            srv.stop()
        if trusted:  # each forwarded client has its own bucket
            assert claimed == [200] * 5 and same == [200] * 3 + [429] * 2, (claimed, same)
        else:  # one peer, one bucket (the readiness polls of the start may have used some of it)
            assert 429 in claimed and set(same) == {429}, (claimed, same)
