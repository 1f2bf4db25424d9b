"""Retry policy for calls to ViaTrajectoire: how long to wait, and what the server asked for.

Pure functions, so the schedule is testable without waiting. The IG says nothing of rate limits;
429 and 5xx are treated as passing faults (brief §3.3), ``Retry-After`` is honoured in both of its
forms (delta-seconds or HTTP-date, RFC 9110 §10.2.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from vtdui.config import RetrySettings

__all__ = ["backoff_delay", "parse_http_date", "parse_retry_after", "response_date"]


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Return the seconds to wait that a ``Retry-After`` header asks for.

    Args:
        value: the header value, e.g. ``"120"`` or ``"Wed, 21 Oct 2026 07:28:00 GMT"``.
        now: the reference instant for an HTTP-date, ideally the response's own ``Date`` header so that
            a skewed local clock does not matter (timezone aware).

    Returns:
        Seconds (>= 0), or ``None`` when the header is absent or malformed (a malformed hint is ignored
        rather than trusted).

    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    when = parse_http_date(text)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


def parse_http_date(value: str | None) -> datetime | None:
    """Parse an HTTP-date (``Date``, ``Retry-After``) into an aware datetime; ``None`` if malformed."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # RFC 9110 dates are GMT


def response_date(headers: Mapping[str, str]) -> datetime:
    """Return the server's ``Date`` of a response, or the local time when it has none."""
    return parse_http_date(headers.get("Date")) or datetime.now(UTC)


def backoff_delay(attempt: int, policy: RetrySettings, *, retry_after: float | None = None,
                  rand: float = 1.0) -> float:
    """Return how long to wait after failed attempt number ``attempt`` (1-based).

    Exponential backoff ``base_delay * 2**(attempt-1)`` capped at ``max_delay``, with "equal jitter":
    a random point in the upper half of that interval, so that establishments started together do not
    retry in lock-step, yet never retry sooner than half the nominal delay. A server's ``Retry-After``
    is a floor: the wait is never shorter than what it asked.

    Args:
        attempt: number of the attempt that just failed (1 for the first).
        policy: the configured retry policy.
        retry_after: seconds asked by the server, if any.
        rand: a number in [0, 1] (``random.random()``); 1.0 gives the nominal delay.

    Returns:
        Seconds to sleep before the next attempt.

    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    nominal = min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))
    delay = nominal / 2.0 + min(max(rand, 0.0), 1.0) * nominal / 2.0
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
