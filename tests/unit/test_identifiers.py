from __future__ import annotations

import pytest

from vtdui.identifiers import finess_key, is_valid_finess, is_valid_nir, nir_key


def test_finess_luhn_key() -> None:
    assert is_valid_finess("35000001" + finess_key("35000001"))
    wrong = str((int(finess_key("35000001")) + 1) % 10)
    assert not is_valid_finess("35000001" + wrong)


@pytest.mark.parametrize("value", ["", "12345678", "1234567890", "ABCDEFGHI", "3500000 1"])
def test_finess_format(value: str) -> None:
    assert not is_valid_finess(value)


def test_nir_key_known_value() -> None:
    # 1 55 08 2B 123 456, key computed with 2B -> 18 per INSEE
    base = "155082B123456"
    assert nir_key(base) == f"{97 - int('1550818123456') % 97:02d}"
    assert is_valid_nir(base + nir_key(base))
    assert not is_valid_nir(base + "00" if nir_key(base) != "00" else base + "01")


def test_nir_rejects_bad_shapes() -> None:
    assert not is_valid_nir("12345")
    assert not is_valid_nir("955082B12345601")
