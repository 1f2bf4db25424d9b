"""Wiring: build the long-lived objects of a vtdui process from the configuration, once.

Commands and the service use :class:`Runtime` so that a piece is created in one place: the state
store, the HAPI store, the plugin manager, one ViaTrajectoire client per legal entity (one token per
EJ), the sync engine, and the outbound side: the outbox, the emitter, the reconciler and the exchange
log (the HTTP traces ``vtdui evidence`` exports).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vtdui import sdo
from vtdui.emit import CURRENT_ITEM, Emitter
from vtdui.hookcontext import InboundContext
from vtdui.plugins import get_plugin_manager
from vtdui.reconcile import Reconciler
from vtdui.storage import open_exchanges, open_outbox, open_state
from vtdui.store import HapiStore
from vtdui.sync import EstablishmentReport, SyncEngine

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from vtdui.config import Config, LegalEntity
    from vtdui.viatrajectoire.client import ViaTrajectoireClient

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


class Runtime:
    """The objects one vtdui process shares; close it when done.

    Args:
        config: the validated configuration.
        pm: a plugin manager (default: built-ins, entry points and ``config.hooks_dir``).
        progress: progress callback of the sync engine.
        dry_run: the emitter prints the requests instead of sending them.
        out: where a dry run prints.
        worker: this process's name in the outbox leases (default ``host:pid``).
    """

    def __init__(self, config: Config, *, pm: pluggy.PluginManager | None = None,
                 progress: Callable[[str, int, int | None], None] | None = None, dry_run: bool = False,
                 out: Callable[[str], None] | None = None, worker: str | None = None) -> None:
        self.config = config
        self.pm = pm if pm is not None else get_plugin_manager(config.hooks_dir)
        self.state = open_state(config)
        self.store = HapiStore(config.hapi.base_url, timeout=config.hapi.timeout,
                               authorization=config.hapi.authorization)
        self._clients: dict[str, ViaTrajectoireClient] = {}
        self._lock = threading.Lock()
        self.exchanges = open_exchanges(config, current_item=CURRENT_ITEM.get)
        self.sync = SyncEngine(config, state=self.state, store=self.store, pm=self.pm,
                               client_for=self.client_for, progress=progress)
        self.outbox = open_outbox(config, config.retry, lease_seconds=config.outbox.lease_seconds)
        self.emitter = Emitter(config, self.outbox, self.client_for, self.pm, self.store, self.state,
                               on_consent_accepted=self.fetch_evaluation, dry_run=dry_run, out=out, worker=worker,
                               history_floor=lambda resource_type: self.reconciler.floor(resource_type))
        self.reconciler = Reconciler(self.emitter, self.state)

    def client_for(self, entity: LegalEntity) -> ViaTrajectoireClient:
        """Return the ViaTrajectoire client of a legal entity, created on first use."""
        from vtdui.viatrajectoire.client import ViaTrajectoireClient

        with self._lock:
            client = self._clients.get(entity.finess_ej)
            if client is None:
                client = ViaTrajectoireClient(self.config.viatrajectoire, entity, self.config.retry,
                                              on_exchange=self.exchanges.record)
                self._clients[entity.finess_ej] = client
            return client

    def fetch_evaluation(self, id_nat_decision: str, finess_eg: str) -> bool:
        """Flux 3 for one decision right after ViaTrajectoire accepted its consent (flux 2).

        Returns:
            True when the evaluation is now in HAPI; False when ViaTrajectoire has none yet (the next
            sync cycles keep asking, :meth:`vtdui.state.StateStore.evaluations_due`).
        """
        entity, establishment = self.config.establishment(finess_eg)
        context = InboundContext(config=self.config, legal_entity=entity, establishment=establishment,
                                 source=sdo.PLUGIN_SOURCE, now=datetime.now(UTC))
        report = EstablishmentReport(establishment.finess_eg)
        stored = self.sync.fetch_evaluation(self.client_for(entity), context, report, id_nat_decision)
        log.info("evaluation of a consented decision for %s: %s", establishment.finess_eg,
                 "stored" if stored else "not available yet")
        return stored

    def token_expiries(self) -> dict[str, float | None]:
        """Seconds until the cached access token of each legal entity expires (``None``: no token yet)."""
        with self._lock:
            return {finess_ej: client.auth.expires_in() for finess_ej, client in self._clients.items()}

    def close(self) -> None:
        """Close the clients, the HAPI store, the outbox, the exchange log and the state store."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        self.store.close()
        self.outbox.close()
        self.exchanges.close()
        self.state.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
