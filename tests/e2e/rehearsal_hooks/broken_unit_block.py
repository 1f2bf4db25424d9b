"""A vendor's broken ESMSTask builder: the unit block loses ``nomUnite`` (regle-StatutUnite is then broken).

Used by ``test_rehearse.py``: every scenario whose ESMSTask carries a unit status must fail with that rule
named; the others (ESMS status alone, consent, inbound flux) must still pass.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from vtdui import hookimpl, sdo


def _code(item: dict[str, Any]) -> str | None:
    return next((c.get("code") for c in (item.get("type") or {}).get("coding", [])), None)


@hookimpl(wrapper=True)
def build_esms_task(change: Any, context: Any) -> Generator[None, Any, Any]:
    """Drop ``nomUnite`` from the ESMSTask built by the inner implementations when it reports a unit status."""
    task = yield
    if isinstance(task, dict) and any(_code(i) == sdo.STATUT_UNITE for i in task.get("input", [])):
        task["input"] = [i for i in task["input"] if _code(i) != sdo.NOM_UNITE]
    return task
