"""Run the simulator: the FHIR port (HTTPS, mutual TLS) and the admin port (plain HTTP, loopback).

uvicorn does not put the client certificate in the ASGI scope (no ``tls`` extension with the h11
protocol), so :class:`_MtlsH11Protocol` reads it from the TLS object of the connection when the
connection is made (after the handshake) and puts the DER bytes in the per-connection ``state``,
which uvicorn copies into every request's ``scope["state"]``.

In-process use (tests)::

    sim = start_simulator(tmp_path, seed=1, n_decisions=10, port=0, admin_port=0)
    ... sim.fhir_base_url, sim.token_url, sim.admin_url, sim.info ...
    sim.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from vtdui.errors import VtduiError
from vtdui.simulator.admin_api import build_admin_app, info_document
from vtdui.simulator.config_writer import write_dui_config
from vtdui.simulator.context import SimulatorContext
from vtdui.simulator.fhir_api import PEER_CERT_KEY, TRANSPORT_KEY, build_fhir_app
from vtdui.simulator.pki import ensure_pki
from vtdui.simulator.settings import SimulatorSettings
from vtdui.simulator.state import SimulatorState

__all__ = ["RunningSimulator", "start_simulator", "start_with_settings"]


class _MtlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the client certificate and transport of the connection in ``scope["state"]``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # per-connection copy: uvicorn copies app_state into each request scope of this connection
        self.app_state = {**self.app_state, PEER_CERT_KEY: der, TRANSPORT_KEY: transport}
        super().connection_made(transport)


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every response waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise VtduiError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class RunningSimulator:
    """A simulator running in a background thread.

    Attributes:
        settings: its settings (ports resolved).
        context: shared state (store, tokens, faults ...).
        fhir_base_url: ``https://127.0.0.1:<port>/fhir``.
        token_url: ``https://127.0.0.1:<port>/oauth/token``.
        admin_url: ``http://127.0.0.1:<admin port>/_admin``.
        config_path: the ``vtdui.toml`` written for the DUI.
    """

    settings: SimulatorSettings
    context: SimulatorContext
    fhir_base_url: str
    token_url: str
    admin_url: str
    config_path: Path
    _servers: tuple[uvicorn.Server, uvicorn.Server]
    _thread: threading.Thread

    @property
    def info(self) -> dict[str, Any]:
        """What ``GET /_admin/info`` answers (URLs, client credentials, certificates, establishments)."""
        return info_document(self.context)

    @property
    def data_dir(self) -> Path:
        """The data directory."""
        return self.settings.data_dir

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both listeners and wait for the thread."""
        for server in self._servers:
            server.should_exit = True
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        """Tell whether the listeners still run."""
        return self._thread.is_alive()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(data_dir: Path, seed: int = 1, n_decisions: int = 20, **options: Any) -> RunningSimulator:
    """Start a simulator in a background thread; return once both ports accept connections.

    Args:
        data_dir: where the PKI, ``vtdui.toml`` and ``info.json`` go.
        seed: dataset seed.
        n_decisions: decisions generated at start.
        **options: any other :class:`SimulatorSettings` field (``port=0`` picks a free port).
    """
    return start_with_settings(SimulatorSettings(data_dir=Path(data_dir), seed=seed, n_decisions=n_decisions,
                                                 **options))


def start_with_settings(settings: SimulatorSettings) -> RunningSimulator:
    """Start a simulator from full settings (see :func:`start_simulator`).

    Raises:
        VtduiError: a port is taken or the server did not start.
    """
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    fhir_sock = _bind(settings.host, settings.port)
    admin_sock = _bind(settings.host, settings.admin_port)
    settings = replace(settings, data_dir=data_dir, port=fhir_sock.getsockname()[1],
                       admin_port=admin_sock.getsockname()[1])
    state = SimulatorState(settings.seed, settings.n_decisions)
    pki = ensure_pki(data_dir / "pki", [(ej.finess_ej, ej.name) for ej in state.entities],
                     client_id=settings.client_id, client_secret=settings.client_secret)
    scheme = "http" if settings.plain_http else "https"
    host = _url_host(settings.host)
    root = f"{scheme}://{host}:{settings.port}"
    ctx = SimulatorContext(settings, state, pki, fhir_base_url=f"{root}/fhir", token_url=f"{root}/oauth/token",
                           admin_url=f"http://{host}:{settings.admin_port}/_admin")

    tls: dict[str, Any] = {}
    if not settings.plain_http:
        tls = {"ssl_certfile": str(pki.server_cert), "ssl_keyfile": str(pki.server_key),
               "ssl_ca_certs": str(pki.ca_cert), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    fhir_config = uvicorn.Config(build_fhir_app(ctx), http=_MtlsH11Protocol, lifespan="off", log_level="warning",
                                 access_log=False, server_header=False, **tls)
    admin_config = uvicorn.Config(build_admin_app(ctx), http="h11", lifespan="off", log_level="warning",
                                  access_log=False, server_header=False)
    # run in a background thread: uvicorn then leaves signals to the caller (the CLI or the test process)
    servers = (uvicorn.Server(fhir_config), uvicorn.Server(admin_config))

    config_path = write_dui_config(ctx)
    (data_dir / "info.json").write_text(json.dumps(info_document(ctx), indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    (data_dir / "info.json").chmod(0o600)

    async def serve() -> None:
        await asyncio.gather(servers[0].serve(sockets=[fhir_sock]), servers[1].serve(sockets=[admin_sock]))

    def run() -> None:
        try:
            asyncio.run(serve())
        finally:
            for sock in (fhir_sock, admin_sock):
                with contextlib.suppress(OSError):
                    sock.close()

    thread = threading.Thread(target=run, name="vtdui-simulator", daemon=True)
    thread.start()
    while not all(s.started for s in servers):
        if not thread.is_alive():
            raise VtduiError("the simulator stopped while starting (see the log above)")
        thread.join(0.02)
    return RunningSimulator(settings, ctx, ctx.fhir_base_url, ctx.token_url, ctx.admin_url, config_path,
                            servers, thread)
