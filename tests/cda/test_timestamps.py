"""HL7 dates and timestamps read from the CDA (the usual shapes have a fast path; all shapes give the same)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from vtdui.cda.parse import _parse_date, _parse_ts

PARIS_SUMMER = timezone(timedelta(hours=2))


@pytest.mark.parametrize(("value", "expected"), [
    ("20260509221149+0000", datetime(2026, 5, 9, 22, 11, 49, tzinfo=UTC)),
    ("20260509221149+0200", datetime(2026, 5, 9, 22, 11, 49, tzinfo=PARIS_SUMMER)),
    ("20260509221149-0130", datetime(2026, 5, 9, 22, 11, 49, tzinfo=timezone(-timedelta(hours=1, minutes=30)))),
    (" 20260509221149+0200 ", datetime(2026, 5, 9, 22, 11, 49, tzinfo=PARIS_SUMMER)),
    ("20260509221149.25+0200", datetime(2026, 5, 9, 22, 11, 49, tzinfo=PARIS_SUMMER)),  # fraction ignored
    ("20260509221149", datetime(2026, 5, 9, 22, 11, 49)),
    ("202605092211+0200", datetime(2026, 5, 9, 22, 11, tzinfo=PARIS_SUMMER)),
    ("20260509", datetime(2026, 5, 9)),
    ("202605", datetime(2026, 5, 1)),
    ("2026", datetime(2026, 1, 1)),
    ("20261309221149+0000", None),   # month 13
    ("20260509251149+0000", None),   # hour 25
    ("20260509221149+2400", None),   # offset of a day
    ("2026050922114a+0000", None),
    ("20260230", None),
    ("", None),
    ("x", None),
])
def test_hl7_timestamps(value: str, expected: datetime | None) -> None:
    parsed = _parse_ts(value)
    assert parsed == expected
    if parsed is not None and expected is not None:
        assert parsed.utcoffset() == expected.utcoffset()
    assert _parse_date(value.strip()) == (expected.date() if expected is not None else None)


def test_dates_with_other_decimal_digits_read_as_the_general_form_does() -> None:
    # the regular expression's \d accepts every Unicode decimal digit; the yyyymmdd fast path does the same
    arabic_indic = "٢٠٢٦٠٥٠٩"
    assert _parse_date(arabic_indic) == date(2026, 5, 9)
    assert _parse_ts(arabic_indic) == datetime(2026, 5, 9)
