"""Where notifications may go: webhook URLs checked against the allow-list, e-mail addresses.

A webhook is a request the service makes from inside its own network, so its host is checked
against ``GPUPOOL_WEBHOOK_ALLOW_HOSTS`` when the subscription is made and again before every
try (the list may have shrunk since). Entries are host names (matched exactly, case
insensitive), IP addresses, or networks in CIDR form (matched by URLs that name an IP address);
``*`` allows every host. The sender follows no redirects and uses no proxy, so the host
checked is the host reached (a name is resolved by DNS at each try: allow names only where
their DNS is trusted).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

#: a plain address: no display name, no comments, no spaces or line breaks (header injection)
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(ValueError):
    """A destination that may not be used, saying why."""


class AllowList:
    """The hosts webhooks may reach (``GPUPOOL_WEBHOOK_ALLOW_HOSTS``)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.any = False
        self.names: set[str] = set()
        self.networks: list[Network] = []
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            if entry == "*":
                self.any = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.names.add(entry.lower().rstrip("."))

    def allows(self, host: str) -> bool:
        if self.any:
            return True
        host = host.lower().rstrip(".")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host in self.names
        return any(ip in n for n in self.networks)


def check_webhook(url: str, allow: AllowList) -> str:
    """``url`` if it may be a webhook target; else ``Refused`` naming the problem."""
    if len(url) > 2048:
        raise Refused("url: longer than 2048 characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise Refused("url: must not contain spaces or control characters")
    if not url.isascii():
        raise Refused("url: must be ASCII (percent-encode other characters; IDNA-encode host names)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise Refused(f"url: not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"url: must be http:// or https://, not {parts.scheme or 'no scheme'}")
    if not parts.hostname:
        raise Refused("url: names no host")
    if parts.username or parts.password:
        raise Refused("url: must not carry a user name or password (the body is signed instead)")
    if port == 0:
        raise Refused("url: port 0 is not a port")
    if not allow.allows(parts.hostname):
        listed = allow.spec or "empty: no webhook host is allowed"
        raise Refused(
            f"url: host {parts.hostname!r} is not in GPUPOOL_WEBHOOK_ALLOW_HOSTS ({listed}); "
            "webhooks go only to hosts the operator allows"
        )
    return url


def check_email(address: str) -> str:
    """``address`` if it is a plain e-mail address; else ``Refused``."""
    if len(address) > 254 or not _EMAIL.match(address):
        raise Refused(f"email: {address[:80]!r} is not a plain e-mail address (name@domain)")
    return address
