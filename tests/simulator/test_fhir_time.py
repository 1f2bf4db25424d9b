"""Unit tests of the ``_lastUpdated`` parser and the instant format."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vtdui.simulator.fhir_time import LastUpdatedError, format_instant, parse_last_updated


@pytest.mark.parametrize("raw, expected", [
    ("gt2026-05-10T06:00:00.000+02:00", datetime(2026, 5, 10, 4, 0, tzinfo=UTC)),
    ("gt2026-05-10T06:00:00Z", datetime(2026, 5, 10, 6, 0, tzinfo=UTC)),
    ("gt2026-05-10T06:00:00.1+00:00", datetime(2026, 5, 10, 6, 0, 0, 100000, tzinfo=UTC)),
    ("gt2026-05-10T06:00:00.123456-05:00", datetime(2026, 5, 10, 11, 0, 0, 123456, tzinfo=UTC)),
])
def test_instants(raw: str, expected: datetime) -> None:
    assert parse_last_updated(raw) == expected


def test_a_date_means_after_that_whole_day_in_paris() -> None:
    bound = parse_last_updated("gt2026-05-10")
    assert bound < datetime(2026, 5, 10, 22, 0, tzinfo=UTC)  # 2026-05-11T00:00+02:00
    assert bound > datetime(2026, 5, 10, 21, 59, 59, 999000, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["2026-05-10", "lt2026-05-10", "gt2026-05-10T06:00:00 02:00", "gt2026-05-10T06:00",
                                 "gt2026-02-30", "gt2026-05-10T25:00:00Z", "gt", "gtnow"])
def test_rejected(raw: str) -> None:
    with pytest.raises(LastUpdatedError):
        parse_last_updated(raw)


def test_format_is_milliseconds_with_an_offset() -> None:
    text = format_instant(datetime(2026, 7, 1, 12, 0, 0, 123456, tzinfo=UTC))
    assert text == "2026-07-01T14:00:00.123+02:00"
    assert parse_last_updated("gt" + text) == datetime(2026, 7, 1, 12, 0, 0, 123000, tzinfo=UTC)
