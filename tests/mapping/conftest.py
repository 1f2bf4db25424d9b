"""Fixtures of the mapping tests: real simulator data turned into real CDA bytes and parsed back."""

from __future__ import annotations

import pytest
from mapping_helpers import NOW, make_context

from vtdui.cda.parse import parse_decision, parse_evaluation
from vtdui.cda.records import DecisionDocument, EvaluationDocument
from vtdui.hookcontext import InboundContext
from vtdui.simulator.dataset import Dataset, SimulatedDecision


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return Dataset.generate(seed=11, n_decisions=6, now=NOW)


@pytest.fixture
def simulated(dataset: Dataset) -> SimulatedDecision:
    return dataset.decisions[0]


@pytest.fixture
def context(dataset: Dataset, simulated: SimulatedDecision) -> InboundContext:
    return make_context(dataset, simulated)


@pytest.fixture
def decision_raw(simulated: SimulatedDecision) -> bytes:
    return simulated.decision_cda()


@pytest.fixture
def decision_doc(decision_raw: bytes) -> DecisionDocument:
    return parse_decision(decision_raw)


@pytest.fixture
def evaluation_raw(simulated: SimulatedDecision) -> bytes:
    return simulated.evaluation_cda()


@pytest.fixture
def evaluation_doc(evaluation_raw: bytes) -> EvaluationDocument:
    return parse_evaluation(evaluation_raw)


