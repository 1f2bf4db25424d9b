"""OAuth2 client-credentials tokens of the simulator: opaque, random, kept server-side, bound to a certificate.

A token is issued for the legal entity (FINESS EJ) whose client certificate carried the token request,
and lists that entity's establishments (FINESS EG), as the ViaTrajectoire token does. A token presented
over a connection with another certificate is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["AccessToken", "ClientAuthError", "TokenStore", "client_credentials"]


@dataclass(frozen=True)
class AccessToken:
    """An issued access token.

    Attributes:
        value: the opaque bearer value.
        finess_ej: legal entity it was issued to.
        finess_eg: establishments it gives access to.
        cert_fingerprint: SHA-256 of the client certificate it is bound to.
        expires_at: expiry (``time.time()`` scale).
    """

    value: str = field(repr=False)
    finess_ej: str
    finess_eg: tuple[str, ...]
    cert_fingerprint: str
    expires_at: float


class ClientAuthError(Exception):
    """A token request is refused; ``error`` is the RFC 6749 code, ``status`` the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def client_credentials(authorization: str | None, form: Mapping[str, str]) -> tuple[str, str]:
    """Read the client id and secret from HTTP Basic or from the form body (one of the two, not both).

    Raises:
        ClientAuthError: none given, both given, or a malformed Basic header.
    """
    basic = authorization is not None and authorization[:6].lower() == "basic "
    in_form = "client_id" in form or "client_secret" in form
    if basic and in_form:
        raise ClientAuthError("invalid_request", "use one client authentication method: HTTP Basic or form fields")
    if basic:
        assert authorization is not None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ClientAuthError("invalid_client", "malformed HTTP Basic credentials", 401) from exc
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise ClientAuthError("invalid_client", "malformed HTTP Basic credentials", 401)
        # RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64
        return unquote(client_id), unquote(secret)
    if in_form:
        return form.get("client_id", ""), form.get("client_secret", "")
    raise ClientAuthError("invalid_client", "client authentication required (HTTP Basic or client_id/client_secret)",
                          401)


class TokenStore:
    """Issued tokens, thread-safe.

    Args:
        lifetime: seconds a token is valid (``expires_in``).
        clock: ``time.time``-like clock.
    """

    def __init__(self, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()

    def issue(self, finess_ej: str, finess_eg: tuple[str, ...], cert_fingerprint: str) -> AccessToken:
        """Create a new token."""
        token = AccessToken(secrets.token_urlsafe(32), finess_ej, finess_eg, cert_fingerprint,
                            self.clock() + self.lifetime)
        with self._lock:
            now = self.clock()
            # forget long-expired tokens so a long run does not grow without bound
            for key in [k for k, t in self._tokens.items() if t.expires_at < now - 86400]:
                del self._tokens[key]
            self._tokens[token.value] = token
        return token

    def lookup(self, value: str) -> AccessToken | None:
        """The token with this value (expired or not), ``None`` when never issued."""
        with self._lock:
            for key, token in self._tokens.items():
                if hmac.compare_digest(key, value):
                    return token
        return None

    def is_expired(self, token: AccessToken) -> bool:
        """Tell whether the token has expired."""
        return self.clock() >= token.expires_at

    def expire(self, value: str) -> bool:
        """Make a token expire now (fault injection); tell whether it existed."""
        with self._lock:
            token = self._tokens.get(value)
            if token is None:
                return False
            self._tokens[value] = AccessToken(token.value, token.finess_ej, token.finess_eg,
                                              token.cert_fingerprint, self.clock() - 1)
            return True

    def expire_all(self) -> int:
        """Make every token expire now; return how many."""
        with self._lock:
            values = list(self._tokens)
        for value in values:
            self.expire(value)
        return len(values)
