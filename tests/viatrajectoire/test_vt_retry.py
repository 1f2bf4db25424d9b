"""Retry-After parsing, backoff schedule, and the _lastUpdated instant encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from vtdui.config import RetrySettings
from vtdui.viatrajectoire import format_instant, last_updated_gt
from vtdui.viatrajectoire.retry import backoff_delay, parse_http_date, parse_retry_after

NOW = datetime(2026, 5, 12, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    (" 0 ", 0.0),
    ("Tue, 12 May 2026 07:01:30 GMT", 90.0),
    ("Tue, 12 May 2026 06:00:00 GMT", 0.0),  # already past: no wait, never negative
    (None, None),
    ("", None),
    ("-5", None),
    ("1.5", None),  # RFC 9110 delta-seconds is an integer
    ("soon", None),
    ("Tue, 99 Foo 2026", None),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_http_date_is_timezone_aware() -> None:
    parsed = parse_http_date("Tue, 12 May 2026 07:00:00 GMT")
    assert parsed == NOW and parsed.tzinfo is not None
    assert parse_http_date("garbage") is None


POLICY = RetrySettings(attempts=6, base_delay=1.0, max_delay=10.0)


def test_backoff_doubles_then_caps_at_max_delay() -> None:
    nominal = [backoff_delay(n, POLICY, rand=1.0) for n in range(1, 7)]
    assert nominal == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_jitter_stays_in_the_upper_half() -> None:
    lowest = [backoff_delay(n, POLICY, rand=0.0) for n in range(1, 6)]
    assert lowest == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert backoff_delay(3, POLICY, rand=0.5) == 3.0
    assert backoff_delay(3, POLICY, rand=7.0) == 4.0  # out-of-range randomness is clamped


def test_retry_after_is_a_floor_never_a_ceiling() -> None:
    assert backoff_delay(1, POLICY, retry_after=30.0, rand=0.0) == 30.0
    assert backoff_delay(4, POLICY, retry_after=1.0, rand=1.0) == 8.0


def test_backoff_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        backoff_delay(0, POLICY)


def test_last_updated_escapes_the_plus_of_the_offset() -> None:
    moment = datetime(2015, 2, 7, 13, 28, 17, 239000, tzinfo=timezone(timedelta(hours=2)))
    assert last_updated_gt(moment) == "gt2015-02-07T13:28:17.239%2B02:00"  # the IG's own example


def test_last_updated_negative_offset_and_utc() -> None:
    assert last_updated_gt(datetime(2026, 5, 10, 6, tzinfo=timezone(timedelta(hours=-3)))) == \
        "gt2026-05-10T06:00:00.000-03:00"
    assert last_updated_gt(datetime(2026, 5, 10, 6, tzinfo=UTC)) == "gt2026-05-10T06:00:00.000%2B00:00"


def test_last_updated_paris_summer_time() -> None:
    moment = datetime(2026, 7, 1, 8, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert last_updated_gt(moment) == "gt2026-07-01T08:30:00.000%2B02:00"


def test_instant_requires_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_instant(datetime(2026, 5, 10, 6))


def test_instant_with_a_seconds_offset_is_expressed_in_utc() -> None:
    lmt = timezone(timedelta(minutes=9, seconds=21))
    assert format_instant(datetime(1900, 1, 1, 0, 9, 21, tzinfo=lmt)) == "1900-01-01T00:00:00.000+00:00"
