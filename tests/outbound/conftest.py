"""Fixtures of the outbound tests: a real HTTP server (uvicorn) running an ASGI app in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn


@contextmanager
def serve(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` on a free port of ``host``; yield its base URL (``http://host:port``)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="outbound-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def http_server() -> Callable[..., Any]:
    """``http_server(app)`` is a context manager running ``app`` on loopback."""
    return serve


@pytest.fixture(scope="module")
def vt_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real ViaTrajectoire simulator (mTLS + OAuth2) for the outbound integration tests."""
    from vtdui.simulator.server import start_simulator

    sim = start_simulator(tmp_path_factory.mktemp("vt-sim-outbound"), seed=11, n_decisions=2, port=0, admin_port=0)
    yield sim
    sim.stop()
