"""Logging: structured JSON lines (or text), with secrets and identifiers redacted on the way out.

The code never logs health data on purpose (it logs ids, codes and counts). The :class:`RedactingFilter`
is the second line of defence: bearer tokens, OAuth secrets, passwords and NIR-like numbers are masked in
every record, whatever logger produced it (httpx, uvicorn, plugins).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from vtdui.urls import redact_userinfo

__all__ = ["JsonFormatter", "RedactingFilter", "redact", "setup_logging"]

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)((?:access_token|client_secret|password|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"),
     r"\1[REDACTED]"),
    # NIR / INS: 13 digits (+ 2-digit key), Corsica 2A/2B allowed
    (re.compile(r"(?<![0-9A-Za-z])[12378]\d{4}(?:\d{2}|2[AB])\d{6}(?:\d{2})?(?![0-9A-Za-z])"), "[NIR]"),
)

_extra_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask this exact value in every later log record (client secrets, p12 passwords)."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with tokens, secrets, URL credentials and NIR-like numbers masked."""
    for secret in _extra_secrets:
        text = text.replace(secret, "[REDACTED]")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return redact_userinfo(text) if "@" in text else text


class RedactingFilter(logging.Filter):
    """Masks secrets in the final message (arguments merged) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and extra fields given with ``extra=``."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                payload[key] = value if isinstance(value, (int, float, bool, type(None))) else redact(str(value))
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Configure the root logger once: chosen format, redaction on every handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_vtdui", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._vtdui = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(logging.WARNING)
