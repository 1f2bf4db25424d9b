"""The README's main command, ``vtdui demo``, end to end: its own HAPI server, the simulator, both directions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from vtdui import hapi_server
from vtdui.cli import cli

pytestmark = pytest.mark.integration


def test_demo_round_trip_then_a_rerun_reuses_the_data(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--dir", str(directory), "--decisions", "12", "--port", "0"])
    output = result.output
    assert result.exit_code == 0, output + repr(result.exception)
    # the inbound cycle filled the work list, the user's change went out and was accepted
    assert re.search(r"work list in HAPI \((\d+) items", output)
    assert int(re.search(r"work list in HAPI \((\d+) items", output).group(1)) >= 12  # type: ignore[union-attr]
    assert "delivery: 1 sent, 0 refused, 0 to retry" in output
    plugins = "plugins loaded:\n    builtin:vtdui.mapping.builtin (builtin)\n    builtin:vtdui.builders (builtin)\n"
    assert plugins in output, output
    # through HAPI's Subscription and the receiver, not queued by the demo itself
    assert re.search(r"HAPI's Subscription delivered it: item \d+ queued after [\d.]+ s", output), output
    assert re.search(r"save in HAPI -> accepted by ViaTrajectoire: [\d.]+ s", output)
    assert re.search(r"4 ESMSTask\s*│\s*\S+\s*│\s*201\s*│\s*41", output), output
    # flux 5 applied, nothing stored twice
    assert "now: 49 Notification annulée" in output
    assert "decisions stored again: 0" in output
    # both servers stopped; the HAPI database stayed on disk
    assert hapi_server.status(state_dir=directory / "hapi-run") is None
    assert any((directory / "hapi-db").rglob("*.mv.db"))

    again = runner.invoke(cli, ["demo", "--dir", str(directory), "--decisions", "12", "--port", "0"])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert "delivery: 1 sent" in again.output
