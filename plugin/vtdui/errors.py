"""Exceptions raised by vtdui.

Every error the package raises on purpose derives from :class:`VtduiError`, so a caller can
catch one class. The tree says what the caller should do::

    VtduiError
    ├── ConfigError            the configuration is wrong: fix it and restart (fatal)
    ├── HapiError              the local HAPI FHIR server failed or refused a request
    ├── RemoteError            ViaTrajectoire answered with an error (carries the OperationOutcome)
    │   └── AuthError          mTLS / OAuth2 / struct_idnat refused
    ├── RetriableError         a passing fault (network, 429, 5xx): try again later
    ├── ConformanceError       a resource breaks IG rules (carries each failed rule)
    └── DocumentError          a CDA document is malformed, hostile or incomplete (kept aside)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthError",
    "ConfigError",
    "ConformanceError",
    "DocumentError",
    "HapiError",
    "RemoteError",
    "RetriableError",
    "RuleViolation",
    "VtduiError",
]


class VtduiError(Exception):
    """Root of every error vtdui raises on purpose."""


class ConfigError(VtduiError):
    """The configuration is invalid; the message says where and how to fix it."""


class HapiError(VtduiError):
    """The local HAPI FHIR server could not be reached or refused a request."""

    def __init__(self, message: str, *, status: int | None = None,
                 outcome: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class RemoteError(VtduiError):
    """ViaTrajectoire answered with an HTTP error; ``outcome`` is its OperationOutcome, if any."""

    def __init__(self, message: str, *, status: int | None = None,
                 outcome: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome

    def issues(self) -> list[str]:
        """Return the diagnostics of the OperationOutcome, one string per issue."""
        if not self.outcome:
            return []
        out: list[str] = []
        for issue in self.outcome.get("issue", []):
            text = issue.get("diagnostics") or issue.get("details", {}).get("text") or issue.get("code", "")
            out.append(str(text))
        return out


class AuthError(RemoteError):
    """Authentication or authorisation failed (certificate, token, struct_idnat)."""


class RetriableError(VtduiError):
    """A passing fault: the same request may succeed later.

    Attributes:
        retry_after: seconds the server asked to wait (``Retry-After``), if it said.

    """

    def __init__(self, message: str, *, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class RuleViolation:
    """One broken conformance rule.

    Attributes:
        rule: short stable name of the rule (e.g. ``regle-StatutUnite``, ``ASS_A32``).
        path: FHIRPath-like location of the offending element.
        message: what is wrong and how to fix it, in one sentence.
        severity: ``error`` (blocks sending) or ``warning``.

    """

    rule: str
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.path}: {self.message}"


class ConformanceError(VtduiError):
    """A resource breaks IG rules; ``violations`` lists each one.

    Attributes:
        culprit: who broke the rules, when vtdui knows: ``"build"`` (the ``build_esms_*`` implementation
            that produced the resource), ``"before_send"`` (a ``before_send`` implementation changed a
            conformant resource into a broken one), or ``None``.
    """

    def __init__(self, message: str, violations: Sequence[RuleViolation], *, culprit: str | None = None) -> None:
        super().__init__(message + "".join(f"\n  - {v}" for v in violations))
        self.violations = list(violations)
        self.culprit = culprit


class DocumentError(VtduiError):
    """A CDA document is malformed, hostile or lacks what the IG requires.

    Attributes:
        reason: a short machine-readable code (``xml-syntax``, ``entity``, ``too-large``,
            ``base64``, ``encoding``, ``missing-identifier``, ``not-cda`` ...).

    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
