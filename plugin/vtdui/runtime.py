"""Wiring: build the long-lived objects of a vtdui process from the configuration, once.

Commands and the service use :class:`Runtime` so that a piece is created in one place: the state
store, the HAPI store, the plugin manager, one ViaTrajectoire client per legal entity (one token per
EJ), the sync engine.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from vtdui.plugins import get_plugin_manager
from vtdui.state import StateStore
from vtdui.store import HapiStore
from vtdui.sync import SyncEngine

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from vtdui.config import Config, LegalEntity
    from vtdui.viatrajectoire.client import ViaTrajectoireClient

__all__ = ["Runtime"]


class Runtime:
    """The objects one vtdui process shares; close it when done."""

    def __init__(self, config: Config, *, pm: pluggy.PluginManager | None = None,
                 progress: Callable[[str, int, int | None], None] | None = None) -> None:
        self.config = config
        self.pm = pm if pm is not None else get_plugin_manager(config.hooks_dir)
        self.state = StateStore(config.state_dir)
        self.store = HapiStore(config.hapi.base_url, timeout=config.hapi.timeout,
                               authorization=config.hapi.authorization)
        self._clients: dict[str, ViaTrajectoireClient] = {}
        self._lock = threading.Lock()
        self.sync = SyncEngine(config, state=self.state, store=self.store, pm=self.pm,
                               client_for=self.client_for, progress=progress)

    def client_for(self, entity: LegalEntity) -> ViaTrajectoireClient:
        """Return the ViaTrajectoire client of a legal entity, created on first use."""
        from vtdui.viatrajectoire.client import ViaTrajectoireClient

        with self._lock:
            client = self._clients.get(entity.finess_ej)
            if client is None:
                client = ViaTrajectoireClient(self.config.viatrajectoire, entity, self.config.retry)
                self._clients[entity.finess_ej] = client
            return client

    def close(self) -> None:
        """Close the clients, the HAPI store and the state store."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        self.store.close()
        self.state.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
