"""Settings of one simulator run (the ``vtdui simulator`` options, also used by :func:`start_simulator`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["EvaluationWithoutConsent", "SimulatorSettings"]

#: What flux 3.1 answers when no consent exists for (decision, establishment): IG silent (brief §11.3).
EvaluationWithoutConsent = Literal["empty", "403"]


@dataclass(frozen=True)
class SimulatorSettings:
    """How the simulator runs.

    Attributes:
        data_dir: where the PKI, ``vtdui.toml`` and ``info.json`` are written.
        host: address both listeners bind to (loopback only by default).
        port: FHIR + OAuth2 port (HTTPS with mutual TLS).
        admin_port: admin/MDPH back-door port (plain HTTP, loopback).
        seed: dataset seed (same seed, same decisions).
        n_decisions: decisions generated at start.
        token_lifetime: access-token lifetime in seconds (``expires_in``).
        page_size: default page size of searches (``None``: everything in one page; ``_count`` overrides).
        max_count: largest ``_count`` honoured.
        evaluation_without_consent: flux 3.1 answer without consent: empty searchset or 403.
        plain_http: serve the FHIR port without TLS (debugging only: no certificate check at all).
        client_id: OAuth2 client id (default: stored in the PKI, else ``vtdui-simulator``).
        client_secret: OAuth2 client secret (default: stored in the PKI, else random).
        hapi_base_url: HAPI base URL written into the generated ``vtdui.toml``.
        flux5_other_statuses: ESMS-level/unit-level statuses of *other* establishments that flux 5 returns
            (``None``: all of them).
        max_lookback_days: refuse ``_lastUpdated`` bounds older than this many days (``None``: no limit).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    admin_port: int = 8444
    seed: int = 1
    n_decisions: int = 20
    token_lifetime: float = 3600.0
    page_size: int | None = None
    max_count: int = 1000
    evaluation_without_consent: EvaluationWithoutConsent = "empty"
    plain_http: bool = False
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    hapi_base_url: str = "http://127.0.0.1:8080/fhir"
    flux5_other_statuses: frozenset[str] | None = None
    max_lookback_days: int | None = None
