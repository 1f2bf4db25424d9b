"""Fixtures of the CDA tests: a small dataset and two of its documents."""

from __future__ import annotations

import pytest
from cda_helpers import NOW

from vtdui.simulator.dataset import Dataset


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return Dataset.generate(seed=42, n_decisions=12, now=NOW)


@pytest.fixture(scope="session")
def decision_xml(dataset: Dataset) -> bytes:
    return dataset.decisions[0].decision_cda()


@pytest.fixture(scope="session")
def evaluation_xml(dataset: Dataset) -> bytes:
    return dataset.decisions[0].evaluation_cda()
