"""``vtdui simulator``: run the ViaTrajectoire sandbox (SI-SdO Gestionnaire side) until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from vtdui.simulator.server import start_with_settings
from vtdui.simulator.settings import SimulatorSettings

__all__ = ["simulator"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address both ports bind to.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="FHIR + OAuth2 port (HTTPS, mutual TLS).")
@click.option("--admin-port", default=8444, show_default=True, type=click.IntRange(0, 65535),
              help="Admin/MDPH port (plain HTTP).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".vtdui-simulator"),
              show_default=True, help="Where the PKI, vtdui.toml and info.json are written (reused next time).")
@click.option("--seed", default=1, show_default=True, type=int, help="Dataset seed: same seed, same decisions.")
@click.option("--decisions", "n_decisions", default=20, show_default=True, type=click.IntRange(0, 1_000_000),
              help="Decisions generated at start.")
@click.option("--token-lifetime", default=3600, show_default=True, type=click.IntRange(1),
              help="Access-token lifetime in seconds.")
@click.option("--page-size", default=None, type=click.IntRange(1),
              help="Default search page size (no paging if unset).")
@click.option("--evaluation-without-consent", type=click.Choice(["empty", "403"]), default="empty",
              show_default=True, help="Flux 3.1 answer when no consent exists.")
@click.option("--max-lookback-days", default=None, type=click.IntRange(1),
              help="Refuse _lastUpdated bounds older than this (J-30 enforcement).")
@click.option("--hapi-base-url", default="http://127.0.0.1:8080/fhir", show_default=True,
              help="HAPI base URL written into the generated vtdui.toml.")
@click.option("--plain-http", is_flag=True, help="DEBUG ONLY: serve the FHIR port without TLS nor client certificates.")
def simulator(host: str, port: int, admin_port: int, data_dir: Path, seed: int, n_decisions: int,
              token_lifetime: int, page_size: int | None, evaluation_without_consent: str,
              max_lookback_days: int | None, hapi_base_url: str, plain_http: bool) -> None:
    """Run the ViaTrajectoire simulator: mTLS + OAuth2 + the five flux of IG ans.fhir.fr.sdo 4.0.7.

    Writes the PKI and a ready-to-use vtdui.toml into the data directory, prints where they are, then
    serves until Ctrl+C (SIGINT) or SIGTERM.
    """
    if plain_http:
        click.secho("WARNING: --plain-http: no TLS, no client certificate check. Debugging only.", fg="yellow",
                    err=True)
    settings = SimulatorSettings(
        data_dir=data_dir, host=host, port=port, admin_port=admin_port, seed=seed, n_decisions=n_decisions,
        token_lifetime=float(token_lifetime), page_size=page_size,
        evaluation_without_consent="403" if evaluation_without_consent == "403" else "empty",
        plain_http=plain_http, hapi_base_url=hapi_base_url, max_lookback_days=max_lookback_days)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = start_with_settings(settings)
    try:
        info = running.info
        click.echo(f"ViaTrajectoire simulator (seed {seed}, {info['decision_count']} decisions)")
        click.echo(f"  FHIR base     {running.fhir_base_url}")
        click.echo(f"  token URL     {running.token_url}")
        click.echo(f"  admin         {running.admin_url}/info")
        click.echo(f"  terminology   {info['terminology_url']}")
        click.echo(f"  CA            {info['ca_cert']}")
        for entity in info["legal_entities"]:
            egs = ", ".join(e["finess_eg"] + (" (ESAT)" if e["is_esat"] else "") for e in entity["establishments"])
            click.echo(f"  EJ {entity['finess_ej']}  cert {entity['cert_file']}  p12 {entity['p12_file']}")
            click.echo(f"      EG {egs}")
        click.echo(f"  DUI config    {running.config_path}  (client secret and p12 passwords inside)")
        click.echo("Serving; Ctrl+C to stop.")
        while not stop.wait(0.5):
            if not running.is_alive():
                raise click.ClickException("the simulator stopped unexpectedly")
    finally:
        running.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Simulator stopped.")
