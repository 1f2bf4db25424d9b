r"""FHIR JSON as vtdui sends it to HAPI: compact, ASCII-only UTF-8 bytes, encoded once.

:meth:`vtdui.store.HapiStore` sends every write body through :func:`dumps` instead of httpx's ``json=``
(``json.dumps`` called with new options each time). A transaction Bundle of one decision is hundreds of small
objects; encoding it is a measurable share of the ingest CPU (see the README, "Benchmarks"), and two of the
standard encoder's defaults cost without helping here:

* the circular-reference check keeps a set of every container on the way down: what vtdui sends is JSON
  built by the mapping and the hooks (a tree: an object shared by two places is fine; a cycle would be a bug,
  and still fails, with a ``RecursionError`` instead of a ``ValueError``);
* non-ASCII text (accented names) written as is makes the encoder build a wider string that must then be
  transcoded to UTF-8; escaped as ``\uXXXX`` (valid JSON, read back identically) the text stays ASCII and
  its UTF-8 bytes are a plain copy.

``NaN`` and infinities are refused (``ValueError``): they are not JSON, and HAPI would refuse them.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps"]

_ENCODER = json.JSONEncoder(ensure_ascii=True, check_circular=False, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """Encode a JSON value (a resource, a Bundle) as compact ASCII bytes.

    Raises:
        TypeError: a value that is not a JSON type.
        ValueError: ``NaN`` or an infinity.
    """
    return _ENCODER.encode(value).encode("ascii")
