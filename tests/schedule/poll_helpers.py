"""Helpers of the polling tests and benchmark: a simulator with many legal entities and establishments.

The simulator's dataset has two legal entities of four establishments by default and its admin API does not
create establishments; :func:`simulator_with` starts one whose dataset has ``n_entities`` x ``per_entity``
(PKI, tokens and ``info`` follow), by passing those sizes to :meth:`Dataset.generate` while it starts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui.simulator.dataset import Dataset
from vtdui.simulator.server import RunningSimulator, start_simulator


@contextmanager
def simulator_with(data_dir: Path, n_entities: int, per_entity: int, hapi_base_url: str,
                   **options: Any) -> Iterator[RunningSimulator]:
    """A running simulator (no seeded decision) with ``n_entities`` legal entities of ``per_entity`` each."""
    generate = Dataset.__dict__["generate"].__func__

    def sized(cls: type[Dataset], seed: int, n_decisions: int, now: datetime, **_: Any) -> Dataset:
        return generate(cls, seed, n_decisions, now, n_entities=n_entities, per_entity=per_entity)  # type: ignore[no-any-return]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Dataset, "generate", classmethod(sized))
        sim = start_simulator(data_dir, seed=random.SystemRandom().randrange(1, 10**9), n_decisions=0, port=0,
                              admin_port=0, hapi_base_url=hapi_base_url)
    try:
        assert len(sim.info["legal_entities"]) == n_entities
        yield sim
    finally:
        sim.stop()


def create_decisions(sim: RunningSimulator, finess_eg: str, count: int) -> list[dict[str, Any]]:
    """Create ``count`` decisions notified to one establishment; return their admin summaries."""
    response = httpx.post(f"{sim.admin_url}/decisions", json={"count": count, "notified_to": [finess_eg]},
                          timeout=120)
    assert response.status_code == 201, response.text
    created: list[dict[str, Any]] = response.json()["decisions"]
    return created


def sync_section(**values: object) -> str:
    """A ``[sync]`` table to append to a configuration file."""
    lines = ["", "[sync]"]
    for key, value in values.items():
        lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
    return "\n".join(lines) + "\n"
