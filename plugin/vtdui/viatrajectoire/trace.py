"""Traces of the exchanges with ViaTrajectoire, for the referencing evidence and for debugging.

Every HTTP attempt (token request included) produces one :class:`Exchange` handed to the optional
``on_exchange`` callback of :class:`~vtdui.viatrajectoire.client.ViaTrajectoireClient`. The outbound side
stores them as the "technical traces of the exchanges" the ANS referencing asks for. Credentials never
reach a trace: ``Authorization`` headers are redacted and the ``access_token`` of a token response is
masked. Bodies do carry health data: whoever stores them must protect them like the DUI's records.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["REDACTED", "Exchange", "ExchangeCallback", "redact_headers", "redact_token_body", "redact_token_request"]

REDACTED = "***"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_FIELDS = ("access_token", "refresh_token", "id_token", "client_secret")


@dataclass(frozen=True)
class Exchange:
    """One HTTP attempt towards ViaTrajectoire.

    Attributes:
        kind: ``"token"`` for the OAuth2 request, ``"fhir"`` for a business call.
        method: HTTP method.
        url: full URL as sent (FHIR queries carry no secret; never a token).
        finess_eg: the establishment the call was made for (``None`` for the token request).
        attempt: 1 for the first try, then 2, 3 ... for retries.
        started_at: wall-clock time the request left (timezone aware).
        duration: seconds until the response (or the failure).
        status: HTTP status, ``None`` when no response came.
        request_headers: sent headers, credentials redacted.
        request_body: sent body (``b""`` for a GET).
        response_headers: received headers, cookies redacted.
        response_body: received body; for a token response the token is masked.
        error: the transport failure (``"ReadTimeout: ..."``) when no response came.

    """

    kind: str
    method: str
    url: str
    finess_eg: str | None
    attempt: int
    started_at: datetime
    duration: float
    status: int | None
    request_headers: Mapping[str, str] = field(default_factory=dict)
    request_body: bytes = b""
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    error: str | None = None


#: Signature of the ``on_exchange`` callback.
ExchangeCallback = Callable[[Exchange], None]


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy headers, replacing credentials (``Authorization``, cookies) by ``***``."""
    return {name: (REDACTED if name.lower() in _SECRET_HEADERS else value) for name, value in headers.items()}


def redact_token_body(body: bytes) -> bytes:
    """Mask the tokens of an OAuth2 token response; a body that is not a JSON object is dropped."""
    try:
        data = json.loads(body)
    except ValueError:
        return b""
    if not isinstance(data, dict):
        return b""
    for name in _SECRET_FIELDS:
        if name in data:
            data[name] = REDACTED
    return json.dumps(data).encode("utf-8")


def redact_token_request(body: bytes) -> bytes:
    """Mask the client secret of a token request sent with form-body credentials (``token_auth = "form"``)."""
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return urllib.parse.urlencode([(k, REDACTED if k in _SECRET_FIELDS else v) for k, v in pairs]).encode("ascii")
