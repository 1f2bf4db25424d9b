"""The JSON bytes vtdui sends to HAPI (:mod:`vtdui.fhirjson`): same value as the standard encoder, ASCII only."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from vtdui import fhirjson

NAME = "Établissement « Les Œillets » — Ngọc 𝔄\u2028"


def test_round_trips_to_the_same_value_as_ascii_compact_bytes() -> None:
    shared = {"system": "urn:oid:1.2.250.1.213.8.1", "value": "VT-1"}  # one object at two places: not a cycle
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Organization", "name": NAME, "identifier": [shared], "active": True,
                      "extension": [{"url": "x", "valueDecimal": 1.5}, {"url": "y", "valueInteger": 3}]}},
        {"resource": {"resourceType": "Basic", "identifier": [shared], "text": None}},
    ]}
    encoded = fhirjson.dumps(bundle)
    assert isinstance(encoded, bytes)
    assert encoded.isascii()
    assert json.loads(encoded) == bundle
    assert json.loads(encoded.decode("utf-8"))["entry"][0]["resource"]["name"] == NAME
    assert b": " not in encoded and b", " not in encoded  # compact
    assert encoded == json.dumps(bundle, separators=(",", ":")).encode("ascii")


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_refuses_what_is_not_json(number: float) -> None:
    with pytest.raises(ValueError, match="JSON"):
        fhirjson.dumps({"valueDecimal": number})
    with pytest.raises(TypeError):
        fhirjson.dumps({"value": {1, 2}})
