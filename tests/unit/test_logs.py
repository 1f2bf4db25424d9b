"""Logs never carry secrets or NIR numbers, whoever logs them."""

from __future__ import annotations

import io
import json
import logging

from vtdui.identifiers import nir_key
from vtdui.logs import register_secret, setup_logging

NIR = "2960535238003"
NIR_FULL = NIR + nir_key(NIR)


def test_json_lines_with_tokens_secrets_and_nir_redacted() -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)
    register_secret("p12-pass-phrase")
    log = logging.getLogger("vtdui.test")
    log.info("Authorization: Bearer abc.def-ghi for %s", NIR_FULL)
    log.info("token form: client_secret=s3cr3t&grant_type=client_credentials")
    log.warning("opening p12 with p12-pass-phrase failed", extra={"finess_eg": "350000022"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    assert "abc.def-ghi" not in text and NIR_FULL not in text and "s3cr3t" not in text
    assert "p12-pass-phrase" not in text
    assert lines[0]["message"] == "Authorization: Bearer [REDACTED] for [NIR]"
    assert lines[2]["finess_eg"] == "350000022" and lines[2]["level"] == "warning"


def test_exception_text_redacted() -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)
    try:
        raise ValueError(f"bad person {NIR_FULL}")
    except ValueError:
        logging.getLogger("vtdui.test").exception("failed")
    assert NIR_FULL not in stream.getvalue()
    assert "[NIR]" in json.loads(stream.getvalue().splitlines()[0])["exception"]
