"""How a notification is sent: a signed JSON POST to a webhook, or a mail through SMTP.

Each send returns an ``Outcome`` (ok, the HTTP status or SMTP reply code, an error line) and
never raises for a failure of the far end: the worker records it and tries again later.

Webhooks: ``X-Gpupool-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes
under the subscription's secret (receivers recompute it and compare in constant time);
``X-Gpupool-Event`` and ``X-Gpupool-Delivery`` name the event kind and the delivery (the same
id on every retry, so a receiver can drop duplicates). A 2xx answer is success; redirects are
not followed (a 3xx is a failure: following one would reach a host nobody allowed).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from gpupool.service.notify.settings import NotifySettings

SIGNATURE_HEADER = "X-Gpupool-Signature"
USER_AGENT = "gpupool-notify/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str
    duration_ms: int


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Does ``header`` sign ``body`` under ``secret``? (What a receiver runs.)"""
    return hmac.compare_digest(sign(secret, body), header)


def body_of(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def post_webhook(url: str, secret: str, message: dict[str, Any], settings: NotifySettings) -> Outcome:
    """POST ``message`` as JSON to ``url``, signed with ``secret``."""
    body = body_of(message)
    parts = urlsplit(url)
    assert parts.hostname is not None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    began = time.monotonic()
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname,
            parts.port,
            timeout=settings.webhook_timeout_s,
            context=ssl.create_default_context(),
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=settings.webhook_timeout_s)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Gpupool-Event": str(message["event"]),
                "X-Gpupool-Delivery": str(message["delivery"]),
                SIGNATURE_HEADER: sign(secret, body),
            },
        )
        resp = conn.getresponse()
        resp.read(65_536)
        status = resp.status
    except (OSError, ValueError, http.client.HTTPException) as e:  # ValueError: a bad URL
        return Outcome(False, None, f"{type(e).__name__}: {e}"[:1024], _ms_since(began))
    finally:
        conn.close()
    if 200 <= status < 300:
        return Outcome(True, status, "", _ms_since(began))
    return Outcome(False, status, f"HTTP {status} {resp.reason}"[:1024], _ms_since(began))


def send_mail(to: str, message: dict[str, Any], settings: NotifySettings) -> Outcome:
    """Mail ``message`` (a subject line and the event as text) to ``to`` through the SMTP server."""
    began = time.monotonic()
    if not settings.smtp_enabled:
        return Outcome(False, None, "no SMTP server: set GPUPOOL_SMTP_HOST", _ms_since(began))
    mail = EmailMessage()
    mail["From"] = settings.smtp_from
    mail["To"] = to
    mail["Subject"] = subject(message)
    mail["X-Gpupool-Event"] = str(message["event"])
    mail["X-Gpupool-Delivery"] = str(message["delivery"])
    mail.set_content(text(message))
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            refused = smtp.send_message(mail)
    except smtplib.SMTPResponseException as e:
        return Outcome(
            False, e.smtp_code, f"SMTP {e.smtp_code}: {_text(e.smtp_error)}"[:1024], _ms_since(began)
        )
    except (OSError, ValueError, smtplib.SMTPException) as e:
        return Outcome(False, None, f"{type(e).__name__}: {e}"[:1024], _ms_since(began))
    if refused:
        code, why = next(iter(refused.values()))
        return Outcome(False, code, f"SMTP {code}: {_text(why)}"[:1024], _ms_since(began))
    return Outcome(True, 250, "", _ms_since(began))


def subject(message: dict[str, Any]) -> str:
    return f"[gpupool] {message['event']}: {message.get('summary', '')}"[:200]


def text(message: dict[str, Any]) -> str:
    return (
        f"{message.get('summary', '')}\n\n"
        + json.dumps(message, indent=2, sort_keys=True, ensure_ascii=False)
        + "\n\n-- gpupool notifications (a subscription made by your pool's administrators)\n"
    )


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _ms_since(began: float) -> int:
    return round((time.monotonic() - began) * 1000)
