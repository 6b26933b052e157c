"""Notifications end to end: a real HTTP receiver and a real SMTP server (aiosmtpd) on 127.0.0.1.

The service runs on SQLite and PostgreSQL (``database_url``) with the notifier driven by hand
(``runtime.notifier.poll()``: the tests' runtime runs no threads of its own). A webhook must
arrive signed with the subscription's secret; a receiver that is down is retried with
back-off and every attempt recorded; job and allocation events come from what the loop and the
allocations already record, each told once; destinations outside the allow-list are refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from gpupool.service.api.app import create_app
from gpupool.service.notify.channels import SIGNATURE_HEADER, verify
from gpupool.service.runtime import Runtime
from gpupool.service.settings import ServiceSettings
from tests.service.conftest import Service, free_port, make_service
from tests.service.fakes import Clock, RecordingExecutor
from tests.service.test_programme import apply, lead, new_call, ok

HOUR = 3_600_000
DAY = 24 * HOUR


class Receiver:
    """A webhook receiver on 127.0.0.1: records each request; may be stopped and restarted on
    its port, or told to answer with another status (and a ``Location``)."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        self.location = ""
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                if outer.location:
                    self.send_header("Location", outer.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.got]


class Mailbox:
    """aiosmtpd's handler: keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def notified(
    tmp_path: Path, database_url: str, mailbox: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The service with webhooks allowed to 127.0.0.1 only and mail through the test's SMTP."""
    monkeypatch.setenv("GPUPOOL_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GPUPOOL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("GPUPOOL_SMTP_PORT", str(mailbox[1]))
    monkeypatch.setenv("GPUPOOL_SMTP_FROM", "pool@gpupool.test")
    monkeypatch.setenv("GPUPOOL_NOTIFY_BACKOFF_S", "10")
    monkeypatch.setenv("GPUPOOL_WEBHOOK_TIMEOUT_S", "5")
    runtime, clock, executor = make_service(tmp_path, database_url)
    with TestClient(create_app(runtime)) as client:
        yield Service(runtime, client, clock, executor)


def subscribe(service: Service, who: str = "admin", status: int = 201, **body: Any) -> dict[str, Any]:
    r = service.call("POST", "/v1/notifications/subscriptions", who, json=body)
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def deliveries(service: Service, who: str = "admin", **params: Any) -> list[dict[str, Any]]:
    return ok(service.call("GET", "/v1/notifications/deliveries", who, params=params))["items"]  # type: ignore[no-any-return]


def test_a_submitted_application_is_posted_signed_and_mailed(
    notified: Service, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    service = notified
    hook = subscribe(service, channel="webhook", target=receiver.url, events=["application.state", "award"])
    mail = subscribe(
        service, channel="email", target="programme@agency.test", events=["application.state"],
        tenant="academia",
    )  # fmt: skip
    assert hook["secret"] and mail["secret"] != hook["secret"]
    # the secret is shown once: never in the list
    listed = ok(service.call("GET", "/v1/notifications/subscriptions"))
    assert {s["id"] for s in listed} == {hook["id"], mail["id"]} and all("secret" not in s for s in listed)

    lead(service, "academia/snu/vision", "minjun.kim")
    call = new_call(service)
    ok(service.call("POST", f"/v1/calls/{call['id']}/open"))
    app = apply(service, "minjun.kim", call["id"], "academia/snu/vision")
    assert service.runtime.notifier.poll() == 0  # a draft is nobody's news
    ok(service.call("POST", f"/v1/applications/{app['id']}/submit", "minjun.kim"))
    assert service.runtime.notifier.poll() == 2

    assert len(receiver.got) == 1
    headers, body = receiver.got[0]
    assert verify(hook["secret"], body, headers[SIGNATURE_HEADER.lower()])
    assert not verify(mail["secret"], body, headers[SIGNATURE_HEADER.lower()])
    sent = json.loads(body)
    assert sent["event"] == headers["x-gpupool-event"] == "application.state"
    assert sent["data"]["to"] == "submitted" and sent["data"]["application"] == app["id"]
    assert sent["tenant"] == "academia/snu/vision" and sent["data"]["by"] == "minjun.kim"

    box, _ = mailbox
    assert len(box.messages) == 1
    rcpt, msg = box.messages[0]
    assert rcpt == ["programme@agency.test"] and msg["From"] == "pool@gpupool.test"
    assert "application.state" in msg["Subject"] and "submitted" in msg["Subject"]
    assert msg["X-Gpupool-Delivery"] is not None

    got = deliveries(service)
    assert {d["state"] for d in got} == {"delivered"} and len(got) == 2
    assert all(len(d["history"]) == 1 and d["history"][0]["ok"] for d in got)
    by_sub = {d["subscription_id"]: d for d in got}
    assert by_sub[hook["id"]]["history"][0]["status"] == 204
    assert by_sub[mail["id"]]["history"][0]["status"] == 250
    assert service.runtime.notifier.poll() == 0  # nothing twice


def test_a_receiver_that_is_down_is_retried_and_a_failed_job_is_told(
    notified: Service, receiver: Receiver
) -> None:
    service = notified
    hook = subscribe(service, channel="webhook", target=receiver.url, events=["job.failed", "job.ended"])
    r = service.submit("minjun.kim", project="academia/snu/vision", gpus=1, name="train")
    assert r.status_code == 201, r.text
    service.cycle()
    service.clock.advance(60_000)
    service.executor.finish(service.executor.launches[-1].allocation_id, 3)
    service.cycle()

    receiver.stop()  # the receiver is down: the port refuses connections
    assert service.runtime.notifier.poll() == 0
    got = deliveries(service)
    assert len(got) == 2 and {d["event"] for d in got} == {"job.ended", "job.failed"}
    for d in got:
        assert d["state"] == "pending" and d["attempts"] == 1
        assert d["next_attempt_ms"] == service.clock() + 10_000  # the first back-off
        assert d["history"][0]["ok"] is False and "Connection" in d["history"][0]["error"]
    assert service.runtime.notifier.poll() == 0  # not due yet: no new attempt
    assert all(d["attempts"] == 1 for d in deliveries(service))

    service.clock.advance(10_000)
    assert service.runtime.notifier.poll() == 0  # still down: the second try fails too
    assert all(d["next_attempt_ms"] == service.clock() + 20_000 for d in deliveries(service))

    receiver.start()  # back, on the same port
    service.clock.advance(20_000)
    assert service.runtime.notifier.poll() == 2
    got = deliveries(service)
    assert all(d["state"] == "delivered" and d["attempts"] == 3 for d in got)
    assert [a["ok"] for a in got[0]["history"]] == [False, False, True]
    failed = next(e for e in receiver.events() if e["event"] == "job.failed")
    assert failed["data"]["state"] == "failed" and failed["data"]["exit_code"] == 3
    assert failed["data"]["name"] == "train" and failed["data"]["user"] == "minjun.kim"
    assert "exited with status 3" in failed["summary"]
    for headers, body in receiver.got:
        assert verify(hook["secret"], body, headers[SIGNATURE_HEADER.lower()])


def test_a_job_that_succeeds_is_ended_not_failed(notified: Service, receiver: Receiver) -> None:
    service = notified
    subscribe(service, channel="webhook", target=receiver.url, events=["job.failed"])
    ended = subscribe(service, channel="webhook", target=receiver.url, events=["job.ended"])
    service.submit("minjun.kim", project="academia/snu/vision", gpus=1)
    service.cycle()
    service.executor.finish(service.executor.launches[-1].allocation_id, 0)
    service.cycle()
    assert service.runtime.notifier.poll() == 1
    [d] = deliveries(service)
    assert d["subscription_id"] == ended["id"] and receiver.events()[0]["data"]["outcome"] == "completed"


def test_allocations_expiring_and_exhausted_are_told_once(notified: Service, receiver: Receiver) -> None:
    service = notified
    subscribe(
        service, channel="webhook", target=receiver.url,
        events=["allocation.expiring", "allocation.exhausted"], tenant="academia/snu",
    )  # fmt: skip
    now = service.clock()
    body = {"project": "academia/snu/vision", "model": "*", "gpu_hours": 2, "state": "active",
            "period_start_ms": now - DAY, "period_end_ms": now + 3 * DAY}  # fmt: skip
    alloc = ok(service.call("POST", "/v1/allocations", json=body), 201)
    later = {**body, "project": "academia/snu/nlp", "period_end_ms": now + 30 * DAY}
    ok(service.call("POST", "/v1/allocations", json=later), 201)
    notifier = service.runtime.notifier
    notifier.check_allocations()
    assert notifier.poll() == 1
    [sent] = receiver.events()
    assert sent["event"] == "allocation.expiring" and sent["data"]["allocation"] == alloc["id"]
    assert sent["data"]["days_left"] == 3.0
    service.clock.advance(DAY)
    notifier.check_allocations()
    assert notifier.poll() == 0 and len(receiver.got) == 1  # told once

    service.submit("minjun.kim", project="academia/snu/vision", gpus=1)
    service.cycle()
    service.clock.advance(3 * HOUR)  # one GPU for three hours: past the two granted
    notifier.check_allocations()
    assert notifier.poll() == 1
    exhausted = receiver.events()[-1]
    assert exhausted["event"] == "allocation.exhausted" and exhausted["data"]["used_gpu_hours"] >= 2
    notifier.check_allocations()
    assert notifier.poll() == 0 and len(receiver.got) == 2


def test_destinations_and_rights(notified: Service, receiver: Receiver) -> None:
    service = notified
    for target, says in (
        ("http://10.0.0.1/hook", "not in GPUPOOL_WEBHOOK_ALLOW_HOSTS"),
        ("http://169.254.169.254/latest/meta-data", "not in GPUPOOL_WEBHOOK_ALLOW_HOSTS"),
        ("http://localhost:1/hook", "not in GPUPOOL_WEBHOOK_ALLOW_HOSTS"),  # names are not addresses
        ("ftp://127.0.0.1/hook", "must be http:// or https://"),
        ("http://user:pw@127.0.0.1/hook", "user name or password"),
        ("http://127.0.0.1:99999/hook", "not a valid URL"),
        ("http://127.0.0.1/hook/\u00fc", "must be ASCII"),
    ):
        r = subscribe(service, status=422, channel="webhook", target=target, events=["job.ended"])
        assert says in r["detail"] and r["errors"][0]["field"] == "target", (target, r)
    r = subscribe(service, status=422, channel="email", target="a@b.test\r\nBcc: x@y.test", events=["award"])
    assert "plain e-mail address" in r["detail"]
    r = subscribe(service, status=422, channel="webhook", target=receiver.url, events=["job.exploded"])
    assert r["errors"][0]["field"].startswith("events")

    # an organisation admin subscribes for her organisation only; a member not at all
    assert service.call("POST", "/v1/users", json={"name": "prof.lee"}).status_code == 201
    r = service.call("POST", "/v1/projects/academia/snu/members", json={"user": "prof.lee", "role": "admin"})
    assert r.status_code == 201, r.text
    subscribe(service, "prof.lee", 403, channel="webhook", target=receiver.url, events=["job.ended"])
    subscribe(  # a tenant she cannot see does not exist for her
        service, "prof.lee", 404, channel="webhook", target=receiver.url, events=["job.ended"],
        tenant="academia/kaist",
    )  # fmt: skip
    mine = subscribe(
        service,
        "prof.lee",
        channel="webhook",
        target=receiver.url,
        events=["job.ended"],
        tenant="academia/snu",
    )
    subscribe(
        service, "minjun.kim", 403, channel="webhook", target=receiver.url, events=["job.ended"],
        tenant="academia/snu/vision",
    )  # fmt: skip
    theirs = subscribe(service, channel="email", target="ops@pool.test", events=["job.failed"])
    assert [s["id"] for s in ok(service.call("GET", "/v1/notifications/subscriptions", "prof.lee"))] == [
        mine["id"]
    ]
    assert ok(service.call("GET", "/v1/notifications/subscriptions", "minjun.kim")) == []
    assert (
        service.call("DELETE", f"/v1/notifications/subscriptions/{theirs['id']}", "prof.lee").status_code
        == 404
    )

    # a job of kaist is not told to snu's subscription; a job of snu is, and is visible to her
    service.submit("jiwoo.han", project="academia/kaist/llm", gpus=1)
    service.submit("minjun.kim", project="academia/snu/vision", gpus=1)
    service.cycle()
    for launch in list(service.executor.launches):
        service.executor.finish(launch.allocation_id, 0)
    service.cycle()
    service.runtime.notifier.poll()
    assert [e["data"]["project"] for e in receiver.events()] == ["academia/snu/vision"]
    assert [d["subscription_id"] for d in deliveries(service, "prof.lee")] == [mine["id"]]
    assert deliveries(service, "minjun.kim") == []

    assert (
        service.call("DELETE", f"/v1/notifications/subscriptions/{mine['id']}", "prof.lee").status_code == 204
    )
    assert ok(service.call("GET", "/v1/notifications/subscriptions")) == [
        {k: v for k, v in theirs.items() if k != "secret"}
    ]
    actions = [a["action"] for a in ok(service.call("GET", "/v1/audit"))["items"]]
    assert {"notification.subscribe", "notification.unsubscribe"} <= set(actions)


def test_redirects_are_not_followed_and_deliveries_give_up(notified: Service, receiver: Receiver) -> None:
    service = notified
    subscribe(service, channel="webhook", target=receiver.url, events=["job.ended"])
    receiver.status, receiver.location = 302, "http://169.254.169.254/latest/meta-data"
    service.submit("minjun.kim", project="academia/snu/vision", gpus=1)
    service.cycle()
    service.executor.finish(service.executor.launches[-1].allocation_id, 0)
    service.cycle()
    notifier = service.runtime.notifier
    attempts = notifier.settings.notify_max_attempts
    for _ in range(attempts + 2):
        notifier.poll()
        service.clock.advance(round(notifier.settings.notify_max_backoff_s * 1000))
    [d] = deliveries(service)
    assert d["state"] == "failed" and d["attempts"] == attempts and d["next_attempt_ms"] is None
    assert d["last_error"] == "HTTP 302 Found" and len(receiver.got) == attempts


def test_the_runtime_thread_delivers_without_being_asked(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service that runs its own threads (as ``serve`` does): a failed job reaches the
    webhook through the loop's thread and the notifier's, with no test calling either."""
    monkeypatch.setenv("GPUPOOL_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.setenv("GPUPOOL_NOTIFY_POLL_S", "0.05")
    executor = RecordingExecutor()
    settings = ServiceSettings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'gpupool.db'}", cycle_interval_ms=20
    )
    runtime = Runtime(settings, executors={"*": executor})
    with TestClient(create_app(runtime)) as client:
        service = Service(runtime, client, Clock(), executor)
        subscribe(service, channel="webhook", target=receiver.url, events=["job.failed"])
        assert service.submit("minjun.kim", project="academia/snu/vision", gpus=1).status_code == 201
        deadline = time.monotonic() + 20
        while not executor.launches and time.monotonic() < deadline:
            time.sleep(0.02)
        executor.finish(executor.launches[-1].allocation_id, 1)
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [e["event"] for e in receiver.events()] == ["job.failed"]
