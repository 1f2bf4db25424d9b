"""French identifiers used by the interface: FINESS, idNat_Struct, NIR (INS).

Pure functions; they say whether a value is well formed, never where it comes from.
"""

from __future__ import annotations

import re

__all__ = ["finess_key", "is_valid_finess", "is_valid_nir", "nir_key"]

_FINESS_RE = re.compile(r"^(?:\d{2}|2A|2B)\d{7}$")
_NIR_RE = re.compile(r"^[12378]\d{4}(?:\d{2}|2A|2B)\d{6}$")


def _luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # from the right, every second digit (the key excluded) is doubled
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total


def finess_key(first_eight: str) -> str:
    """Return the Luhn check digit of the first eight characters of a FINESS number.

    Corsican numbers (``2A``/``2B``) are keyed on ``20``/``20``: their letter carries no weight.
    """
    digits = first_eight.replace("A", "0").replace("B", "0")
    return str((10 - _luhn_sum(digits) % 10) % 10)


def is_valid_finess(value: str) -> bool:
    """Tell whether ``value`` is a well-formed FINESS (9 characters, Luhn key)."""
    if not _FINESS_RE.match(value):
        return False
    return finess_key(value[:8]) == value[8]


def nir_key(first_thirteen: str) -> str:
    """Return the two-digit key of a NIR (97 - n mod 97; Corsica 2A/2B mapped as the INSEE rule says)."""
    digits = first_thirteen.upper()
    if digits[5:7] == "2A":
        number = int(digits[:5] + "19" + digits[7:])
    elif digits[5:7] == "2B":
        number = int(digits[:5] + "18" + digits[7:])
    else:
        number = int(digits)
    return f"{97 - number % 97:02d}"


def is_valid_nir(value: str) -> bool:
    """Tell whether ``value`` is a 15-character NIR whose key matches."""
    value = value.upper()
    if len(value) != 15 or not _NIR_RE.match(value[:13]) or not value[13:].isdigit():
        return False
    return nir_key(value[:13]) == value[13:]
