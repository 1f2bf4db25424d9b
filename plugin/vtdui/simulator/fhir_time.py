"""FHIR instants as the simulator writes them, and the ``_lastUpdated`` search parameter as it reads it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

__all__ = ["LastUpdatedError", "format_instant", "parse_last_updated"]


def _paris() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Paris")
    except Exception:  # no tz database on this machine: UTC is still a valid FHIR offset
        return UTC


#: ViaTrajectoire is a French service: instants carry the Paris offset (+01:00 / +02:00), so the
#: DUI sees a ``+`` it must escape as ``%2B`` when it sends an instant back.
PARIS: Final = _paris()

_INSTANT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class LastUpdatedError(ValueError):
    """``_lastUpdated`` is not ``gt`` followed by an instant or a date; the message says how to fix it."""


def format_instant(value: datetime) -> str:
    """Return a FHIR instant with milliseconds and the Paris offset (e.g. ``2026-05-10T14:02:11.000+02:00``)."""
    return value.astimezone(PARIS).isoformat(timespec="milliseconds")


def parse_last_updated(raw: str) -> datetime:
    """Return the exclusive lower bound meant by ``_lastUpdated=gt<instant|date>``.

    A date ``gtYYYY-MM-DD`` means "after that whole day" (FHIR date-search semantics, Paris time).

    Raises:
        LastUpdatedError: no ``gt`` prefix, a ``+`` that arrived as a space, or a malformed value.
    """
    if " " in raw:
        raise LastUpdatedError(
            f"_lastUpdated {raw!r} contains a space: the '+' of the timezone offset must be percent-encoded "
            "as %2B in the URL (IG flux 1.1 / 5.1), e.g. gt2026-05-10T06:00:00.000%2B02:00")
    if not raw.startswith("gt"):
        prefix = raw[:2] if raw[:2].isalpha() else "no prefix"
        raise LastUpdatedError(f"_lastUpdated must use the prefix 'gt' (got {prefix!r}): "
                               "_lastUpdated=gt<date of the last search>")
    value = raw[2:]
    if _DATE.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise LastUpdatedError(f"_lastUpdated: {value!r} is not a valid date") from exc
        return datetime.combine(day + timedelta(days=1), time(0), PARIS) - timedelta(microseconds=1)
    if not _INSTANT.match(value):
        raise LastUpdatedError(
            f"_lastUpdated: {value!r} is not a FHIR instant with timezone (YYYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm)) "
            "nor a date (YYYY-MM-DD)")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise LastUpdatedError(f"_lastUpdated: {value!r} is not a valid instant") from exc
