"""``vtdui terminology``: show the JDV snapshot, refresh it from a FHIR terminology server."""

from __future__ import annotations

from pathlib import Path

import click
import httpx

from vtdui import sdo
from vtdui.errors import ConfigError, VtduiError
from vtdui.terminology import DEFAULT_CANONICALS, Terminology, update_from_server

__all__ = ["terminology"]

_DEFAULT_SERVER = "https://smt.esante.gouv.fr/fhir"


def _state_dir(option: Path | None, required: bool) -> Path | None:
    if option is not None:
        return option
    try:
        from vtdui.config import load_config

        return load_config().state_dir
    except VtduiError:
        if required:
            raise
        return None


def _resolve(term: Terminology, name: str) -> str:
    """A canonical URL from a full URL, ``JDV_J252``, ``J252`` or ``ASS_A32``."""
    if "://" in name:
        return name
    key = name.upper().replace("-", "_")
    if key in ("A32", "ASS_A32"):
        return sdo.ASS_A32
    key = key.removeprefix("JDV_")
    matches = [url for url in term.valueset_canonicals() if f"/JDV_{key}-" in url.upper().replace("-", "_")
               or f"/JDV_{key}_" in url.upper().replace("-", "_")]
    if len(matches) != 1:
        known = ", ".join(u.split("/")[4].split("-")[0] for u in term.valueset_canonicals())
        raise click.BadParameter(f"{name!r} names no single value set (known: {known}, ASS_A32)",
                                 param_hint="JDV")
    return matches[0]


@click.group()
def terminology() -> None:
    """NOS value sets (JDV), code systems (TRE) and ASS_A32 used by the IG checks."""


@terminology.command()
@click.argument("jdv", required=False)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="VTDUI_STATE_DIR",
              default=None, help="State directory holding updated copies (default: from the configuration).")
def show(jdv: str | None, state_dir: Path | None) -> None:
    """List the value sets, or the codes of one (e.g. ``J252``, ``JDV_J34``, ``ASS_A32``)."""
    term = Terminology.load(state_dir=_state_dir(state_dir, required=False))
    if jdv is None:
        for url in term.valueset_canonicals():
            click.echo(f"{url.split('/')[4]}  version {term.valueset_version(url)}  "
                       f"{len(term.valueset_codes(url))} codes")
        click.echo(f"ASS_A32-StatutMotifPersonnePriseCharge  version {term.a32_version}  "
                   f"{len(term.a32_statuses())} statuses with motifs")
        click.echo("sources: " + ", ".join(term.sources))
        return
    canonical = _resolve(term, jdv)
    if canonical == sdo.ASS_A32:
        for status in sorted(term.a32_statuses(), key=lambda c: (len(c), c)):
            motifs = sorted(term.allowed_motifs(status), key=lambda c: (len(c), c))
            due = term.status_requires_motif(status) or "optional"
            click.echo(f"{status:>4} {term.display(sdo.TRE_R357, status)} [motif {due}]: {', '.join(motifs)}")
        return
    click.echo(f"{canonical} version {term.valueset_version(canonical)}")
    rows = [(s, c, False) for s, c in term.valueset_codes(canonical)]
    rows += [(s, c, True) for s, c in term.removed_codes(canonical)]
    for system, code, removed in sorted(rows, key=lambda r: (r[0], len(r[1]), r[1])):
        mark = "  (removed from the JDV)" if removed else ""
        click.echo(f"{code:>6}  {term.display(system, code) or '-'}  [{system.rsplit('/', 1)[-1]}]{mark}")


@terminology.command()
@click.option("--server", default=_DEFAULT_SERVER, show_default=True, help="FHIR R4 terminology server base.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="VTDUI_STATE_DIR",
              default=None, help="Where to write the updated snapshot (default: from the configuration).")
@click.option("--canonical", "canonicals", multiple=True,
              help="Canonical URL to refresh (repeatable; default: every JDV of the IG and ASS_A32).")
@click.option("--page-size", type=click.IntRange(min=1), default=200, show_default=True,
              help="count of each $expand page.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="HTTP timeout in seconds.")
def update(server: str, state_dir: Path | None, canonicals: tuple[str, ...], page_size: int,
           timeout: float) -> None:
    """Refresh the JDVs from a terminology server into the state directory and report what changed."""
    target = _state_dir(state_dir, required=True)
    if target is None:  # pragma: no cover - _state_dir raises instead
        raise ConfigError("no state directory: pass --state-dir")
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        report = update_from_server(server, canonicals or DEFAULT_CANONICALS, client=client, state_dir=target,
                                    page_size=page_size)
    click.echo(str(report))
    for change in report.changes:
        for system, code, old, new in change.display_changes:
            click.echo(f"  display {system.rsplit('/', 1)[-1]}#{code}: {old!r} -> {new!r}")
        if change.written:
            click.echo(f"  wrote {change.written}")
    if report.errors:
        raise SystemExit(1)
