"""``vtdui validate FILE``: run the IG conformance checks of :mod:`vtdui.conformance` on a JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vtdui.conformance import check_resource, has_errors, to_operation_outcome
from vtdui.terminology import Terminology

__all__ = ["validate"]

_KINDS = ("auto", "task", "consent", "document-reference", "bundle-notification", "bundle-decision-evaluation")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(_KINDS), default="auto", show_default=True,
              help="Profile to check against; auto = from resourceType.")
@click.option("--struct", "struct", default=None, metavar="1XXXXXXXXX",
              help="idNat_Struct of the sending establishment (struct_idnat) the resource must name.")
@click.option("--mode", type=click.Choice(["outgoing", "server-response"]), default="outgoing",
              show_default=True, help="A body to send, or a resource read from ViaTrajectoire.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="VTDUI_STATE_DIR",
              default=None, help="Use the terminology updated there by `vtdui terminology update`.")
@click.option("--json", "as_json", is_flag=True, help="Print an OperationOutcome instead of lines.")
def validate(file: Path, kind: str, struct: str | None, mode: str, state_dir: Path | None,
             as_json: bool) -> None:
    """Check FILE (ESMSTask, ESMSConsent, ESMSDocumentReference or search Bundle) against IG 4.0.7.

    Prints one line per broken rule; exits 1 when any rule is broken with severity error,
    0 (and "conformant") otherwise.
    """
    try:
        resource: Any = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise click.BadParameter(f"{file} is not JSON: {exc}", param_hint="FILE") from exc
    if not isinstance(resource, dict):
        raise click.BadParameter(f"{file} does not hold a JSON object (a FHIR resource)", param_hint="FILE")
    terminology = Terminology.load(state_dir=state_dir)
    violations = check_resource(resource, kind, terminology=terminology, expected_struct=struct, strict=True,
                                mode="server-response" if mode == "server-response" else "outgoing")
    if as_json:
        click.echo(json.dumps(to_operation_outcome(violations), indent=2, ensure_ascii=False))
    else:
        for v in violations:
            click.echo(f"{v.severity}: [{v.rule}] {v.path}: {v.message}")
    failed = has_errors(violations)
    if not as_json:
        errors = sum(v.severity == "error" for v in violations)
        warnings = len(violations) - errors
        if failed:
            click.echo(f"{file}: NOT conformant ({errors} error(s), {warnings} warning(s))", err=True)
        else:
            click.echo(f"{file}: conformant" + (f" ({warnings} warning(s))" if warnings else ""))
    if failed:
        raise SystemExit(1)
