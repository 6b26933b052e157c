"""Sign-in of people through OpenID Connect: this service as the relying party (ADR 0008).

This module owns what the service knows of the identity provider (its discovery document and
keys, fetched and cached), the sign-in in progress (``PendingLogin``: state, nonce, PKCE
verifier, kept encrypted in a cookie of the browser that started it, so any service process
behind a load balancer can finish it), the exchange of the authorization code (Authlib), the
verification of the ID token (joserfc: signature against the provider's JWKS, issuer,
audience, expiry, nonce), the mapping of a claim to a gpupool user, and the short-lived
session token the person gets. It knows no web framework: ``api/oidc.py`` serves it.

Rules, and why:

- Only asymmetric signatures are accepted (RS*, PS*, ES*, EdDSA): a provider that also offers
  HS256 would otherwise let anyone who knows the client secret forge tokens, and an ``alg``
  switched to HS256 must not turn the public JWKS into a MAC key.
- A person gets a token of their own user with their own roles, never more: the session
  token is an ordinary token of that user, with an expiry (``oidc_session_s``).
- A person the claim names who is not a gpupool user is refused unless the site asked for
  ``create``; created users are plain users with no memberships, never admins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import errors as jose_errors
from joserfc import jwe, jwt
from joserfc.jwk import KeySet, OctKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpupool.service import auth, store
from gpupool.service.db import UserRow
from gpupool.service.settings import ServiceSettings

#: signature algorithms an ID token may use: asymmetric only (see the module's rules)
ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
#: seconds of clock difference tolerated between this service and the provider
LEEWAY_S = 60
#: a sign-in must finish within this many seconds of its start
LOGIN_TTL_S = 600
#: how long the discovery document and keys are trusted before they are fetched again
METADATA_TTL_S = 3600
#: the cookie that carries the encrypted ``PendingLogin``
COOKIE = "gpupool_oidc"
CALLBACK_PATH = "/v1/auth/oidc/callback"
#: what a gpupool user name may be (as ``POST /v1/users`` checks)
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: a command line's loopback state: random, URL-safe
CLI_STATE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class OidcRefused(Exception):
    """A sign-in that must not succeed; ``str`` says why (answered 401, or 403 for a stranger)."""

    def __init__(self, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.status = status


class ProviderUnavailable(Exception):
    """The identity provider did not answer (answered 503: try again later)."""


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A sign-in this browser started: checked when the provider sends it back."""

    state: str
    nonce: str
    verifier: str
    #: epoch seconds after which the callback refuses it
    expires_s: int
    #: a command line waiting on 127.0.0.1:<cli_port> for the token (0: the dashboard)
    cli_port: int = 0
    cli_state: str = ""


@dataclass(frozen=True, slots=True)
class Provider:
    """The endpoints of the provider's discovery document this service uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class Person:
    """Who the verified ID token says signed in."""

    subject: str
    user_name: str
    display_name: str


@dataclass(frozen=True, slots=True)
class SessionToken:
    plain: str
    user: str
    expires_ms: int


def provider_label(settings: ServiceSettings) -> str:
    return settings.oidc_provider_name or urlsplit(settings.oidc_issuer).hostname or "OpenID Connect"


class RelyingParty:
    """This service as an OIDC client of one provider (thread-safe; one per runtime)."""

    def __init__(self, settings: ServiceSettings, wall_s: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self._wall_s = wall_s
        self._lock = threading.Lock()
        self._provider: tuple[Provider, float] | None = None
        self._keys: KeySet | None = None
        # The cookie key: derived from the client secret, which every service process of a
        # deployment shares, so any of them can read a sign-in another one started.
        secret = settings.oidc_client_secret.encode()
        self._cookie_key = OctKey.import_key(
            hmac.new(secret, b"gpupool oidc login cookie", hashlib.sha256).digest()
        )

    # -- the provider's metadata --------------------------------------------------------------

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            r = httpx.get(url, timeout=10.0, follow_redirects=False)
        except httpx.HTTPError as e:
            raise ProviderUnavailable(f"the identity provider did not answer at {url}: {e}") from None
        if r.status_code != 200:
            raise ProviderUnavailable(f"the identity provider answered {r.status_code} at {url}")
        try:
            data = r.json()
        except ValueError:
            raise ProviderUnavailable(f"the identity provider sent no JSON at {url}") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"the identity provider sent no JSON object at {url}")
        return data

    def provider(self) -> Provider:
        """The discovery document (fetched at most once an hour); its issuer must be ours."""
        with self._lock:
            cached = self._provider
        if cached is not None and time.monotonic() - cached[1] < METADATA_TTL_S:
            return cached[0]
        doc = self._get_json(self.issuer + "/.well-known/openid-configuration")
        issuer = str(doc.get("issuer", ""))
        if issuer.rstrip("/") != self.issuer:
            raise ProviderUnavailable(
                f"the discovery document names issuer {doc.get('issuer')!r}, not {self.issuer!r}"
            )
        try:
            # ID tokens must name the issuer exactly as the provider spells it (a trailing "/")
            found = Provider(issuer, doc["authorization_endpoint"], doc["token_endpoint"], doc["jwks_uri"])
        except KeyError as e:
            raise ProviderUnavailable(f"the discovery document has no {e.args[0]}") from None
        with self._lock:
            self._provider = (found, time.monotonic())
        return found

    def keys(self, refresh: bool = False) -> KeySet:
        with self._lock:
            keys = self._keys
        if keys is not None and not refresh:
            return keys
        data = self._get_json(self.provider().jwks_uri)
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (jose_errors.JoseError, ValueError, KeyError, TypeError) as e:
            raise ProviderUnavailable(f"the provider's JWKS cannot be read: {e}") from None
        with self._lock:
            self._keys = keys
        return keys

    # -- starting a sign-in -------------------------------------------------------------------

    def _session(self, redirect_uri: str) -> OAuth2Session:
        return OAuth2Session(
            self.settings.oidc_client_id,
            self.settings.oidc_client_secret,
            scope=self.settings.oidc_scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )

    def start(self, redirect_uri: str, cli_port: int = 0, cli_state: str = "") -> tuple[str, str]:
        """(the provider's URL to send the browser to, the cookie that remembers this sign-in)."""
        pending = PendingLogin(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            expires_s=int(self._wall_s()) + LOGIN_TTL_S,
            cli_port=cli_port,
            cli_state=cli_state,
        )
        with self._session(redirect_uri) as oauth:
            url, _ = oauth.create_authorization_url(
                self.provider().authorization_endpoint,
                state=pending.state,
                nonce=pending.nonce,
                code_verifier=pending.verifier,
            )
        return str(url), self.seal(pending)

    def seal(self, pending: PendingLogin) -> str:
        """The sign-in, encrypted and authenticated (A256GCM) for the browser's cookie."""
        return jwe.encrypt_compact(
            {"alg": "dir", "enc": "A256GCM"}, json.dumps(asdict(pending)), self._cookie_key
        )

    def unseal(self, cookie: str | None) -> PendingLogin:
        if not cookie:
            raise OidcRefused(
                "no sign-in in progress in this browser (its sign-in cookie is missing or expired): "
                "start again at /v1/auth/oidc/login"
            )
        try:
            data = json.loads(jwe.decrypt_compact(cookie, self._cookie_key).plaintext or b"")
            pending = PendingLogin(**data)
        except (jose_errors.JoseError, ValueError, TypeError):
            raise OidcRefused("the sign-in cookie is not one this service made") from None
        if pending.expires_s < self._wall_s():
            raise OidcRefused("the sign-in took too long (over 10 minutes): start again")
        return pending

    # -- finishing it -------------------------------------------------------------------------

    def finish(self, pending: PendingLogin, state: str, code: str, redirect_uri: str) -> dict[str, Any]:
        """The verified claims of the ID token the provider gives for ``code``."""
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise OidcRefused(
                "the state does not match the sign-in this browser started (a forged callback?)"
            )
        try:
            with self._session(redirect_uri) as oauth:
                token = oauth.fetch_token(
                    self.provider().token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.verifier,
                )
        except AuthlibBaseError as e:
            raise OidcRefused(f"the identity provider refused the authorization code: {e}") from None
        except requests.RequestException as e:
            raise ProviderUnavailable(f"the identity provider's token endpoint did not answer: {e}") from None
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(id_token, str):
            raise OidcRefused("the identity provider returned no ID token (is the `openid` scope allowed?)")
        return self.verify_id_token(id_token, pending.nonce)

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature, issuer, audience, expiry and nonce hold."""
        try:
            decoded = jwt.decode(id_token, self._key_for(id_token), algorithms=list(ID_TOKEN_ALGORITHMS))
        except jose_errors.BadSignatureError:
            raise OidcRefused(
                "the ID token's signature does not verify against the provider's keys"
            ) from None
        except jose_errors.UnsupportedAlgorithmError:
            raise OidcRefused(
                "the ID token is signed with an algorithm this service refuses "
                f"(only {', '.join(ID_TOKEN_ALGORITHMS)})"
            ) from None
        except (jose_errors.JoseError, ValueError) as e:
            raise OidcRefused(f"the ID token cannot be read: {getattr(e, 'description', e)}") from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._wall_s()),
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.provider().issuer},
            aud={"essential": True, "value": self.settings.oidc_client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except jose_errors.ExpiredTokenError:
            raise OidcRefused("the ID token has expired") from None
        except jose_errors.MissingClaimError as e:
            raise OidcRefused(f"the ID token lacks the required claim {e.claim!r}") from None
        except jose_errors.InvalidClaimError as e:
            which = {"iss": "issuer", "aud": "audience"}.get(e.claim, e.claim)
            raise OidcRefused(
                f"the ID token's {which} ({e.claim}) is not this service's: {claims.get(e.claim)!r}"
            ) from None
        except jose_errors.JoseError as e:
            raise OidcRefused(f"the ID token's claims do not hold: {e.description}") from None
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audience) > 1 and claims.get("azp") != self.settings.oidc_client_id:
            raise OidcRefused("the ID token names several audiences and another authorized party (azp)")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcRefused("the ID token's nonce is not the one of this sign-in (a replayed token?)")
        return claims

    def _key_for(self, id_token: str) -> KeySet:
        # A key id the cached set lacks: the provider may have rotated its keys; fetch once.
        try:
            header = json.loads(base64.urlsafe_b64decode(id_token.split(".", 1)[0] + "=="))
        except (ValueError, IndexError):
            raise OidcRefused("the ID token is not a signed JWT") from None
        keys = self.keys()
        kid = header.get("kid") if isinstance(header, dict) else None
        if kid is not None and all(k.kid != kid for k in keys.keys):
            keys = self.keys(refresh=True)
        return keys

    # -- who it is ----------------------------------------------------------------------------

    def person(self, claims: dict[str, Any]) -> Person:
        """The gpupool user name the configured claim gives."""
        claim = self.settings.oidc_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise OidcRefused(f"the ID token has no {claim!r} claim (set GPUPOOL_OIDC_CLAIM, or the scopes)")
        if claim == "email" and claims.get("email_verified") is False:
            raise OidcRefused(f"the provider has not verified the e-mail address {value!r}", status=403)
        if not USER_NAME.fullmatch(value):
            raise OidcRefused(f"the {claim} {value!r} cannot be a gpupool user name", status=403)
        display = claims.get("name")
        return Person(str(claims["sub"]), value, display if isinstance(display, str) else "")


def sign_in(s: Session, settings: ServiceSettings, person: Person, now_ms: int) -> SessionToken | None:
    """A session token of the user ``person`` names (created if the site allows); audited.

    None: the person is no gpupool user and the site refuses strangers (the refusal is audited
    in ``s``; the caller commits it and answers 403).
    """
    user = s.scalars(select(UserRow).where(UserRow.name == person.user_name)).first()
    if user is None:
        if settings.oidc_unknown_users != "create":
            store.audit(
                s,
                person.user_name,
                "oidc.refuse",
                f"user/{person.user_name}",
                {"sub": person.subject},
                now_ms,
            )
            return None
        user = UserRow(
            name=person.user_name, display_name=person.display_name[:255], role="user", created_ms=now_ms
        )
        s.add(user)
        s.flush()
        store.audit(
            s, "oidc", "user.create", f"user/{user.name}", {"role": "user", "sub": person.subject}, now_ms
        )
    expires_ms = now_ms + settings.oidc_session_s * 1000
    name = f"oidc {provider_label(settings)}"[:64]
    plain = issue_session_token(s, user.id, name=name, expires_ms=expires_ms, now_ms=now_ms)
    detail = {"via": "oidc", "sub": person.subject, "expires_ms": expires_ms}
    store.audit(s, user.name, "token.create", f"user/{user.name}", detail, now_ms)
    return SessionToken(plain, user.name, expires_ms)


def stranger(person: Person) -> OidcRefused:
    return OidcRefused(
        f"{person.user_name} signed in with the identity provider but is not a gpupool user: "
        "ask a pool or organisation admin to add you",
        status=403,
    )


def issue_session_token(s: Session, user_id: int, *, name: str, expires_ms: int, now_ms: int) -> str:
    """Mint a token of ``user_id`` that expires at ``expires_ms``; the secret, shown once.

    The session token carries every scope: the person's role and memberships already bound what
    it may do (ADR 0007), and a person signed in to the dashboard submits and administers as
    their role allows.
    """
    _, plain = auth.issue(s, user_id, name=name, scopes=auth.ALL_SCOPES, expires_ms=expires_ms, now_ms=now_ms)
    return plain
