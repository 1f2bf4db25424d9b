"""Safety net: find in HAPI the changes the REST-hook Subscriptions did not deliver.

HAPI gives up a delivery after about a minute (receiver down, restart, network). The reconciliation
reads what changed since its own cursor (``_lastUpdated`` search) and hands each resource to the
emitter, which reads its earlier versions back (versioned reads) so intermediate versions are not
missed. Versions already queued are skipped by the outbox's unique key, so running it often costs
little and never sends twice.

The cursor lives in the state store (``cursors`` table, establishment ``hapi``, flux
``outbound:<Type>``) and only moves after every version of its window was queued. On the very first
run there is no cursor: the window starts now (older changes predate the plugin's installation and
are not emitted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from vtdui.emit import Emitter
from vtdui.mapping import systems
from vtdui.outbox import normalize_instant
from vtdui.state import Cursor

__all__ = ["CURSOR_OWNER", "ReconcileReport", "Reconciler"]

log = logging.getLogger(__name__)

#: ``finess_eg`` column of the reconciliation cursors in the state store.
CURSOR_OWNER = "hapi"
_TYPES = ("Task", "Consent")


class CursorState(Protocol):
    """What the reconciliation needs from :class:`vtdui.state.StateStore`."""

    def cursor(self, finess_eg: str, flux: str) -> Cursor | None: ...
    def commit_cursor(self, finess_eg: str, flux: str, instant: datetime) -> None: ...


@dataclass
class ReconcileReport:
    """What one pass found."""

    versions_seen: int = 0
    items: list[int] = field(default_factory=list)
    started: dict[str, str] = field(default_factory=dict)


def _search_instant(moment: datetime) -> str:
    # UTC with "Z": no "+" to escape in the query string
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Reconciler:
    """Queues the work-list Task and Consent versions changed since the last pass.

    Args:
        emitter: turns versions into outbox items (and gives the HAPI store).
        state: keeps the cursors.
        overlap_seconds: how far before the cursor each window starts (clock skew between this host and
            HAPI, transactions committed late).
        clock: current time (injected by tests).
    """

    def __init__(self, emitter: Emitter, state: CursorState, *, overlap_seconds: float = 120.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.emitter = emitter
        self.state = state
        self.overlap = timedelta(seconds=overlap_seconds)
        self.clock = clock

    def floor(self, resource_type: str) -> str | None:
        """Normalised instant from which versions of ``resource_type`` count (``None`` before the first pass).

        The emitter uses it to catch up on versions HAPI delivered out of order without going back to
        changes that predate vtdui.
        """
        cursor = self.state.cursor(CURSOR_OWNER, f"outbound:{resource_type}")
        if cursor is None:
            return None
        return normalize_instant(_search_instant(cursor.instant - self.overlap))

    def start_cursors(self) -> list[str]:
        """Set the cursors that do not exist yet to now (``vtdui setup``); return the resource types set.

        From then on, a change made while vtdui is down is found by the first pass after it starts.
        """
        started: list[str] = []
        now = self.clock()
        for resource_type in _TYPES:
            flux = f"outbound:{resource_type}"
            if self.state.cursor(CURSOR_OWNER, flux) is None:
                self.state.commit_cursor(CURSOR_OWNER, flux, now)
                started.append(resource_type)
        return started

    def run_once(self) -> ReconcileReport:
        """One pass over Task (work-list items) and Consent.

        Raises:
            VtduiError: HAPI failed; the cursors did not move, the next pass covers the same window.
        """
        report = ReconcileReport()
        for resource_type, params in (
                ("Task", {"code": f"{systems.TASK_KIND_SYSTEM}|{systems.TASK_KIND_WORKLIST}"}),
                ("Consent", {})):
            self._one_type(resource_type, params, report)
        return report

    def _one_type(self, resource_type: str, params: dict[str, str], report: ReconcileReport) -> None:
        flux = f"outbound:{resource_type}"
        window_start = self.clock()
        cursor = self.state.cursor(CURSOR_OWNER, flux)
        if cursor is None:
            self.state.commit_cursor(CURSOR_OWNER, flux, window_start)
            return
        since = cursor.instant - self.overlap
        report.started[resource_type] = _search_instant(since)
        store = self.emitter.store
        changed = store.search(resource_type, {**params, "_lastUpdated": f"ge{_search_instant(since)}"})
        threshold = normalize_instant(_search_instant(since))
        for resource in changed:
            # the emitter reads the earlier versions back (versioned reads: HAPI's _history search may be a
            # cached answer) down to the threshold or to a version already queued, and enqueues them in order
            items = self.emitter.enqueue_resource(resource, floor=threshold, via="reconciliation")
            report.versions_seen += 1
            report.items.extend(item.id for item in items)
        self.state.commit_cursor(CURSOR_OWNER, flux, window_start)
