"""Helpers of the multi-worker end-to-end test: several `vtdui run` processes sharing one PostgreSQL database.

The DUI side (HAPI as the DUI's screens, the simulator's admin API, `vtdui` subprocesses) comes from the
outbound end-to-end helpers (``tests/e2e/outbound/outbound_e2e_helpers.py``), imported from their folder.
What is added here: the configuration with ``[database] url``, a pool of workers, which worker process holds
a given TCP connection (to kill the one blocked in a held request), and reads of the shared outbox.
"""

from __future__ import annotations

import os
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTBOUND_DIR = Path(__file__).resolve().parents[1] / "outbound"
if str(OUTBOUND_DIR) not in sys.path:
    sys.path.insert(0, str(OUTBOUND_DIR))

import psycopg  # noqa: E402
from outbound_e2e_helpers import (  # noqa: E402
    CHILD_ENV,
    OutboundEnv,
    ServiceProcess,
    free_port,
    own_profiles,
    status_key,
    wait_for,
    wind_down,
)

__all__ = ["CHILD_ENV", "DECISIONS_PER_TEST", "WORKER_COUNTS", "MultiEnv", "OutboundEnv", "ServiceProcess", "Worker",
           "accepted_statuses", "config_text", "decision_of", "free_port", "own_profiles", "pg", "pid_holding",
           "start_workers", "status_counts", "status_key", "task_posts", "wait_for", "wind_down"]

#: Decisions per test, and the tests' worker counts (each test takes its own slice of the decisions).
DECISIONS_PER_TEST = 20
WORKER_COUNTS = (2, 4)

#: Seconds the DUI's ViaTrajectoire client waits for an answer (a held request outlives it).
CLIENT_TIMEOUT = 4.0
#: Outbox lease: a dead worker's items are claimable by the others this long after its claim.
LEASE_SECONDS = 5


def config_text(sim: Any, state_dir: Path, host: str, port: int, public_url: str, secret: str,
                database_url: str) -> str:
    """The DUI configuration of every worker: the simulator's, plus retry, receiver, outbox and database."""
    from vtdui.simulator.config_writer import render_dui_config

    out: list[str] = []
    for line in render_dui_config(sim.context).splitlines():
        if line.startswith("state_dir"):
            line = f'state_dir = "{state_dir}"'
        out.append(line)
        if line == "[viatrajectoire]":
            out.append(f"timeout = {CLIENT_TIMEOUT}")
    out += [
        "", "[retry]", "attempts = 2", "base_delay = 0.3", "max_delay = 2.0", "max_age_seconds = 900",
        "", "[receiver]", f'host = "{host}"', f"port = {port}", f'public_url = "{public_url}"', f'secret = "{secret}"',
        "", "[outbox]", "poll_seconds = 0.5", "reconcile_seconds = 5", f"lease_seconds = {LEASE_SECONDS}",
        "", "[sync]", "interval_seconds = 3600",
        "", "[database]", f'url = "{database_url}"',
        "", "[logging]", 'level = "INFO"', 'format = "json"',
    ]
    return "\n".join(out) + "\n"


@dataclass
class MultiEnv:
    """What the tests of the module share (fixture ``multi``)."""

    outbound: OutboundEnv
    database_url: str
    host: str
    receiver_port: int
    #: the decisions of each test, by worker count
    decisions: dict[int, list[dict[str, Any]]]
    #: the work-list Task of every decision, as the inbound sync left it
    tasks: dict[str, dict[str, Any]]


@contextmanager
def pg(url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the workers' database (reads only)."""
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


# -- workers --------------------------------------------------------------------------------------------


@dataclass
class Worker:
    """One `vtdui run` process of the pool."""

    index: int
    process: ServiceProcess
    receiver: bool

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    @property
    def lease_name(self) -> str:
        """Its name in ``outbox.locked_by`` (``host:pid``)."""
        return f"{socket.gethostname()}:{self.pid}"


def start_workers(env: OutboundEnv, count: int, host: str, receiver_port: int, tag: str) -> list[Worker]:
    """Start ``count`` workers on the same configuration.

    The first listens on ``receiver_port`` (the Subscriptions' endpoint) and runs the inbound sync; the others
    listen on free ports with ``--no-sync`` (their worker and reconciliation loops run all the same).
    """
    workers: list[Worker] = []
    try:
        for index in range(1, count + 1):
            cwd = env.tmp / f"{tag}-w{index}"
            cwd.mkdir()
            process = ServiceProcess(env.config_path, cwd, receiver_port, host)
            if index == 1:
                process.start()
            else:
                process.start("--no-sync", "--port", str(free_port(host)))
            workers.append(Worker(index, process, index == 1))
    except BaseException:
        for worker in workers:
            if worker.process.running():
                worker.process.kill()
        raise
    return workers


# -- which process holds a connection --------------------------------------------------------------------


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _tcp_inodes(local_port: int, remote_port: int) -> set[int]:
    """Inodes of the TCP sockets whose local port is ``local_port`` and remote port ``remote_port``."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                found.add(inode)
    return found


def pid_holding(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` owns the client end ``client_port`` → ``server_port`` of a TCP connection (or none)."""
    inodes = _tcp_inodes(client_port, server_port)
    if not inodes:
        return None
    for pid in pids:
        if _socket_inodes(pid) & inodes:
            return pid
    return None


# -- what the simulator received --------------------------------------------------------------------------


def decision_of(body: Any) -> str | None:
    """``idNat_Decision`` of an ESMSTask body (``None`` when the body is not one)."""
    if not isinstance(body, dict):
        return None
    for item in body.get("input", []):
        if item.get("type", {}).get("coding", [{}])[0].get("code") == "idNat_Decision":
            value = (item.get("valueIdentifier") or {}).get("value")
            return str(value) if value is not None else None
    return None


def task_posts(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``POST /fhir/Task`` requests of a ``/_admin/received`` list."""
    return [r for r in requests if r["method"] == "POST" and r["path"] == "/fhir/Task"]


def accepted_statuses(requests: list[dict[str, Any]], id_nats: list[str]) -> dict[str, list[tuple[str | None, ...]]]:
    """For each decision, the statuses of its accepted (201) ESMSTasks in arrival order."""
    out: dict[str, list[tuple[str | None, ...]]] = {i: [] for i in id_nats}
    for request in task_posts(requests):
        id_nat = decision_of(request.get("body"))
        if request["status"] == 201 and id_nat in out:
            out[id_nat].append(status_key(request["body"]))
    return out


def status_counts(requests: list[dict[str, Any]]) -> Counter[int]:
    """How many ``POST /fhir/Task`` got each status (0: connection dropped, 499: client left a held request)."""
    return Counter(int(r["status"]) for r in task_posts(requests))
