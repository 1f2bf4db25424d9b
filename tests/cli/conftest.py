"""Fixtures of the command-line tests: a client certificate (the simulator's PKI code, no server)."""

from __future__ import annotations

import pytest
from cli_helpers import EJ

from vtdui.simulator.pki import Pki, ensure_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A PKI with one client certificate (PKCS#12 and PEM) for the legal entity :data:`EJ`."""
    return ensure_pki(tmp_path_factory.mktemp("pki"), [(EJ, "Association Exemple")])
