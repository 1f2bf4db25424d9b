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
from vtdui.exitcodes import ERROR
from vtdui.safe_io import UnsafeFileError, read_bounded

__all__ = ["cda"]


@click.command("cda")
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option("--base64", "is_base64", is_flag=True,
              help="FILE holds base64 text (a DocumentReference attachment.data), not XML.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=Limits.max_bytes, show_default=True,
              help="Largest accepted document, in bytes (after base64 decoding).")
def cda(file: Path, is_base64: bool, max_bytes: int) -> None:
    """Parse a Decision or Evaluation CDA document FILE and print the extracted records as JSON.

    Exits with status 1 and the reason (too-large, not-a-file, unreadable, encoding, dtd-forbidden, not-cda,
    missing-identifier ...) when the document is refused; FILE must be a regular file (not a FIFO, a
    device or a directory).
    """
    limits = Limits(max_bytes=max_bytes)
    # Refuse huge files before reading them: base64 is 4/3 of the document plus line breaks.
    ceiling = max_bytes * 2 + 1024 if is_base64 else max_bytes
    try:
        try:
            # a regular file only, read up to the limit: /dev/zero or a FIFO would never end
            data = read_bounded(file, ceiling)
        except UnsafeFileError as exc:
            raise DocumentError(str(exc), reason="too-large" if exc.too_large else "not-a-file") from None
        except OSError as exc:
            raise DocumentError(f"cannot read {file}: {exc.strerror or exc}", reason="unreadable") from None
        if is_base64:
            data = decode_attachment(data, max_bytes=max_bytes)
        document = parse_document(data, limits=limits)
    except DocumentError as exc:
        click.echo(f"Error: document refused ({exc.reason}): {exc}", err=True)
        raise SystemExit(ERROR) from None
    kind = "decision" if isinstance(document, DecisionDocument) else "evaluation"
    payload = {"kind": kind, "id_nat_decision": document.id_nat_decision, **document.as_dict()}
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
