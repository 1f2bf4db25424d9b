"""One HTTP attempt: send, time, trace, log; and the translation of transport failures.

Shared by the token provider and the FHIR client so that both leave the same evidence and the same
log lines (method, path, status, duration: never a body, a token or a name).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from vtdui.errors import AuthError, RemoteError, RetriableError, VtduiError
from vtdui.viatrajectoire.trace import (
    Exchange,
    ExchangeCallback,
    redact_headers,
    redact_token_body,
    redact_token_request,
)

log = logging.getLogger("vtdui.viatrajectoire")

#: Largest answer read from ViaTrajectoire by default (after content decoding): a base64 CDA of 10 MiB
#: with its DocumentReference around it fits; anything bigger is refused while it streams in.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class ResponseTooLargeError(RemoteError):
    """The answer is bigger than the cap: it was not read beyond the cap, the connection was closed."""


#: TLS failures that mean "the connection dropped", not "the peer refused us".
_TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


def send(http: httpx.Client, request: httpx.Request, *, kind: str, finess_eg: str | None, attempt: int,
         clock: Callable[[], float], on_exchange: ExchangeCallback | None,
         max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> httpx.Response:
    """Send ``request`` once, record an :class:`Exchange`, log one line; re-raise transport errors.

    The answer is streamed and read up to ``max_bytes`` (decoded): a bigger one is never held whole in
    memory.

    Raises:
        ResponseTooLargeError: the answer exceeds ``max_bytes`` (declared or while reading it).
        httpx.HTTPError: the transport failed.
    """
    started_at = datetime.now(UTC)
    start = clock()
    sent_body = redact_token_request(request.content) if kind == "token" else request.content
    try:
        response = http.send(request, stream=True)
        try:
            _read_capped(response, max_bytes)
        finally:
            response.close()
    except httpx.HTTPError as exc:
        duration = clock() - start
        log.warning("%s %s failed after %.3fs: %s", request.method, request.url.path, duration,
                    type(exc).__name__)
        _notify(on_exchange, Exchange(
            kind=kind, method=request.method, url=str(request.url), finess_eg=finess_eg, attempt=attempt,
            started_at=started_at, duration=duration, status=None,
            request_headers=redact_headers(request.headers), request_body=sent_body,
            error=f"{type(exc).__name__}: {exc}",
        ))
        raise
    duration = clock() - start
    level = logging.DEBUG if response.status_code < 400 else logging.WARNING
    log.log(level, "%s %s %d %.3fs", request.method, request.url.path, response.status_code, duration)
    body = response.content
    if kind == "token":
        body = redact_token_body(body)
    _notify(on_exchange, Exchange(
        kind=kind, method=request.method, url=str(request.url), finess_eg=finess_eg, attempt=attempt,
        started_at=started_at, duration=duration, status=response.status_code,
        request_headers=redact_headers(request.headers), request_body=sent_body,
        response_headers=redact_headers(response.headers), response_body=body,
    ))
    return response


def _read_capped(response: httpx.Response, max_bytes: int) -> None:
    """Read the streamed body into ``response`` unless it is larger than ``max_bytes``."""
    what = f"{response.request.method} {response.request.url.path}"
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        log.warning("%s: answer of %s bytes refused (cap %d)", what, declared, max_bytes)
        raise ResponseTooLargeError(f"{what}: the answer ({declared} bytes) is larger than the "
                                    f"{max_bytes}-byte cap; not read", status=response.status_code)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            chunks.clear()
            log.warning("%s: answer over the %d-byte cap, connection closed", what, max_bytes)
            raise ResponseTooLargeError(f"{what}: the answer is larger than the {max_bytes}-byte cap; "
                                        "reading stopped", status=response.status_code)
        chunks.append(chunk)
    # joined once (not grown chunk by chunk): one copy of the body at most besides the chunks
    response._content = b"".join(chunks)  # httpx keeps a read body here


def _notify(callback: ExchangeCallback | None, exchange: Exchange) -> None:
    if callback is None:
        return
    try:
        callback(exchange)
    except Exception:  # a failing evidence store must not turn a delivered request into a resend
        log.exception("on_exchange callback failed for %s %s", exchange.method, httpx.URL(exchange.url).path)


def tls_refusal(exc: BaseException) -> ssl.SSLError | None:
    """Return the TLS error behind ``exc`` when the peer refused the handshake or our certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) and not isinstance(current, _TRANSIENT_TLS):
            return current
        current = current.__cause__ or current.__context__
    return None


def silent_close(exc: BaseException) -> bool:
    """Tell whether the server closed the connection without any answer (EOF in or right after TLS)."""
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc):
        return True
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLEOFError):
            return True
        current = current.__cause__ or current.__context__
    return False


def transport_failure(exc: httpx.HTTPError, what: str) -> VtduiError:
    """Translate an httpx failure into the error the caller should act on.

    A TLS refusal (unknown CA, rejected or missing client certificate) will not heal by retrying:
    :class:`AuthError`. Timeouts and network errors are passing faults: :class:`RetriableError`.
    """
    refusal = tls_refusal(exc)
    if refusal is not None:
        reason = getattr(refusal, "verify_message", None) or refusal.reason or str(refusal)
        return AuthError(f"{what}: TLS handshake refused ({reason}); check the client certificate, "
                         "its key and viatrajectoire.ca_file")
    if isinstance(exc, httpx.TimeoutException):
        return RetriableError(f"{what}: timed out ({type(exc).__name__})")
    if silent_close(exc):
        # Some TLS servers (asyncio-based ones among them) drop a connection whose client certificate
        # they reject without sending an alert: indistinguishable from a network drop, so retriable,
        # but say what it usually means.
        return RetriableError(f"{what}: the server closed the connection without answering "
                              f"({type(exc).__name__}); if this persists it probably refuses the client "
                              "certificate: check cert_file/key_file or p12_file, issued for the FINESS EJ")
    return RetriableError(f"{what}: network error ({type(exc).__name__}: {exc})")
