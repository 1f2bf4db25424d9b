"""``vtdui cda FILE``: parse an SDO CDA document and print what was extracted, as JSON.

The output contains the person's identity: it is meant for an operator's terminal, not for logs.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from vtdui.cda.parse import Limits, decode_attachment, parse_document
from vtdui.cda.records import DecisionDocument
from vtdui.errors import DocumentError

__all__ = ["cda"]


@click.command("cda")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--base64", "is_base64", is_flag=True,
              help="FILE holds base64 text (a DocumentReference attachment.data), not XML.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=Limits.max_bytes, show_default=True,
              help="Largest accepted document, in bytes (after base64 decoding).")
def cda(file: Path, is_base64: bool, max_bytes: int) -> None:
    """Parse a Decision or Evaluation CDA document FILE and print the extracted records as JSON.

    Exits with status 1 and the reason (too-large, encoding, dtd-forbidden, not-cda,
    missing-identifier ...) when the document is refused.
    """
    limits = Limits(max_bytes=max_bytes)
    # Refuse huge files before reading them: base64 is 4/3 of the document plus line breaks.
    ceiling = max_bytes * 2 + 1024 if is_base64 else max_bytes
    try:
        if file.stat().st_size > ceiling:
            raise DocumentError(f"file exceeds {max_bytes} bytes", reason="too-large")
        data = file.read_bytes()
        if is_base64:
            data = decode_attachment(data, max_bytes=max_bytes)
        document = parse_document(data, limits=limits)
    except DocumentError as exc:
        click.echo(f"Error: document refused ({exc.reason}): {exc}", err=True)
        raise SystemExit(1) from None
    kind = "decision" if isinstance(document, DecisionDocument) else "evaluation"
    payload = {"kind": kind, "id_nat_decision": document.id_nat_decision, **document.as_dict()}
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
