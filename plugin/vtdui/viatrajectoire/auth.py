"""OAuth 2.0 client-credentials tokens, one per legal entity (FINESS EJ).

ViaTrajectoire issues the token over the entity's mTLS connection, with a client id/secret common to
all structures, and puts in it the FINESS EG the entity may act for (IG page "Sécurité"). The provider
caches it, renews it ``token_renew_margin`` seconds before ``expires_in`` runs out, and renews it once
more when a FHIR call says 401 (the server may revoke or expire it early). Concurrent threads share
one token and one renewal.

Tokens and secrets never reach a log line, an exception message or a trace.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from vtdui.config import ViaTrajectoireSettings
from vtdui.errors import AuthError, ConfigError, RemoteError, RetriableError
from vtdui.viatrajectoire import _transport
from vtdui.viatrajectoire.retry import parse_retry_after, response_date
from vtdui.viatrajectoire.trace import ExchangeCallback

__all__ = ["AccessToken", "TokenProvider"]

#: Lifetime assumed when the token response has no ``expires_in`` (RFC 6749 makes it optional); a 401
#: renews it earlier anyway. CI-SIS guidance is 1 h to 4 h.
DEFAULT_LIFETIME = 3600.0


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when to stop using it (in the provider's clock units)."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float
    renew_at: float

    def __repr__(self) -> str:
        return f"AccessToken(value=***, expires_at={self.expires_at:.0f})"


class TokenProvider:
    """Fetch, cache and renew the access token of one legal entity.

    Args:
        settings: token URL, client id/secret, renewal margin, timeout.
        http: the entity's mTLS client (the token request goes over the same certificate).
        finess_ej: only used in messages.
        clock: monotonic seconds (injectable for tests).
        on_exchange: receives a trace of each token request, token masked.

    Attributes:
        fetch_count: token requests that got an HTTP answer (observability and tests).

    """

    def __init__(self, settings: ViaTrajectoireSettings, http: httpx.Client, *, finess_ej: str = "",
                 clock: Callable[[], float] = time.monotonic,
                 on_exchange: ExchangeCallback | None = None) -> None:
        if not settings.client_id:
            raise ConfigError("viatrajectoire.client_id: missing; the OAuth2 client id given by ViaTrajectoire")
        self._settings = settings
        self._http = http
        self._finess_ej = finess_ej
        self._clock = clock
        self._on_exchange = on_exchange
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self.fetch_count = 0

    def token(self, *, attempt: int = 1) -> str:
        """Return a valid access token, fetching a new one when none is cached or it is due for renewal.

        Raises:
            AuthError: the token endpoint refused the client (``invalid_client`` ...) or the TLS handshake.
            RetriableError: network failure, timeout, 429 or 5xx at the token endpoint.
            RemoteError: the token endpoint answered something that is not a token response.

        """
        with self._lock:
            current = self._token
            if current is not None and self._clock() < current.renew_at:
                return current.value
            return self._fetch(attempt).value

    def renew(self, stale: str, *, attempt: int = 1) -> str:
        """Replace ``stale`` after the server refused it (401); return the token to retry with.

        When another thread already renewed it, its new token is returned without a second request.
        """
        with self._lock:
            current = self._token
            if current is not None and current.value != stale and self._clock() < current.renew_at:
                return current.value
            # Forget the refused token first: if the renewal fails, the next call must not reuse it.
            self._token = None
            return self._fetch(attempt).value

    def expires_in(self) -> float | None:
        """Seconds until the cached token expires (negative once expired); ``None`` when none is cached."""
        current = self._token
        return None if current is None else current.expires_at - self._clock()

    def invalidate(self) -> None:
        """Forget the cached token (the next :meth:`token` call fetches one)."""
        with self._lock:
            self._token = None

    def _fetch(self, attempt: int) -> AccessToken:
        settings = self._settings
        what = f"token request for legal entity {self._finess_ej}"
        # The IG does not say how the real service wants the client credentials (HTTP Basic or the form
        # body, RFC 6749 §2.3.1) nor whether it wants a scope: both are configuration.
        form = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        if settings.token_auth == "form":  # noqa: S105 - a method name
            form.update(client_id=settings.client_id, client_secret=settings.client_secret)
        else:
            headers["Authorization"] = _basic(settings.client_id, settings.client_secret)
        if settings.token_scope:
            form["scope"] = settings.token_scope
        request = self._http.build_request("POST", settings.token_url, data=form, headers=headers)
        try:
            response = _transport.send(self._http, request, kind="token", finess_eg=None, attempt=attempt,
                                       clock=self._clock, on_exchange=self._on_exchange)
        except httpx.HTTPError as exc:
            raise _transport.transport_failure(exc, what) from exc
        self.fetch_count += 1
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), response_date(response.headers))
            raise RetriableError(f"{what}: HTTP {status}", retry_after=retry_after, status=status)
        payload = _json_object(response)
        if status != 200:
            error = str(payload.get("error", "")) if payload else ""
            description = str(payload.get("error_description", "")) if payload else ""
            detail = f"{error}: {description}" if description else error or "no error code"
            hint = {"invalid_client": " (check viatrajectoire.client_id and client_secret, and token_auth: "
                                      "basic or form)",
                    "invalid_scope": " (check viatrajectoire.token_scope)",
                    "invalid_request": " (check viatrajectoire.token_auth and token_scope)"}.get(error, "")
            raise AuthError(f"{what} refused: HTTP {status} {detail}{hint}", status=status)
        if payload is None:
            raise RemoteError(f"{what}: the response is not a JSON object", status=status)
        value = payload.get("access_token")
        token_type = str(payload.get("token_type", "Bearer"))
        if not isinstance(value, str) or not value:
            raise RemoteError(f"{what}: the response has no access_token", status=status)
        if token_type.lower() != "bearer":
            raise RemoteError(f"{what}: token_type {token_type!r} is not Bearer", status=status)
        lifetime = _lifetime(payload.get("expires_in"))
        # A margin larger than the lifetime would renew on every call; keep half the lifetime at least.
        margin = min(settings.token_renew_margin, lifetime / 2.0)
        now = self._clock()
        token = AccessToken(value=value, obtained_at=now, expires_at=now + lifetime,
                            renew_at=now + lifetime - margin)
        self._token = token
        return token


def _lifetime(raw: object) -> float:
    if isinstance(raw, bool):
        return DEFAULT_LIFETIME
    if isinstance(raw, int | float) and raw > 0:
        return float(raw)
    if isinstance(raw, str) and raw.isdigit() and int(raw) > 0:
        return float(raw)
    return DEFAULT_LIFETIME


def _json_object(response: httpx.Response) -> dict[str, object] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _basic(client_id: str, client_secret: str) -> str:
    # RFC 6749 §2.3.1: each part form-urlencoded, then HTTP Basic. Quoting leaves the usual
    # alphanumeric ids unchanged and keeps a secret with ':' or '%' intact.
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")
