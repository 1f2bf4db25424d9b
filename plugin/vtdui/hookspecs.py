"""The hook contract of vtdui (pluggy).

Every hook is documented here and, with an example, in ``hooks/README.md``; a test fails when a hook
is missing from that file. Hook names say when they fire.

Built-in behaviour is registered as ordinary plugins with ``trylast=True``, so a plugin of yours that
implements a ``firstresult`` hook replaces the default, and one that implements a collecting hook adds
to it. A plugin may also implement any hook with ``wrapper=True`` (one ``yield``) to time, audit or
amend what the others do.

Inbound (ViaTrajectoire → HAPI)::

    flux 1 CDA ─▶ map_decision ─▶ before_store ─▶ HAPI transaction ─▶ after_store
    flux 3 CDA ─▶ map_evaluation ─▶ before_store ─▶ HAPI transaction ─▶ after_store
    flux 5 Task ─▶ map_remote_status ─▶ before_store ─▶ HAPI transaction ─▶ after_store
    bad document ─▶ on_document_rejected

Outbound (HAPI change → ViaTrajectoire)::

    work-list Task changed ─▶ build_esms_task ─▶ conformance ─▶ before_send ─▶ conformance ─▶ POST ─▶ after_send
    Consent recorded ─────▶ build_esms_consent ─▶ conformance ─▶ before_send ─▶ conformance ─▶ POST ─▶ after_send
    any failure on the way (broken build, broken by before_send, refused, retries given up) ─▶ on_send_error
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vtdui import hookspec

if TYPE_CHECKING:
    import click

    from vtdui.errors import VtduiError
    from vtdui.hookcontext import (
        InboundContext,
        OutboundContext,
        RejectedDocument,
        StatusChange,
    )

__all__ = [
    "after_send",
    "after_store",
    "before_send",
    "before_store",
    "build_esms_consent",
    "build_esms_task",
    "map_decision",
    "map_evaluation",
    "map_remote_status",
    "on_document_rejected",
    "on_send_error",
    "register_commands",
]

# ---------------------------------------------------------------------------------------------------
# Inbound


@hookspec(firstresult=True)
def map_decision(document: Any, context: InboundContext) -> list[dict[str, Any]] | None:
    """Map a parsed orientation decision (flux 1) into local FHIR resources.

    Fires once per decision document read from ViaTrajectoire (new or updated). ``document`` is a
    :class:`vtdui.cda.records.DecisionDocument`. Return the transaction Bundle entries to write
    (each ``{"fullUrl", "resource", "request"}``, conditional on business identifiers so a second
    sync changes nothing), or ``None`` to let the next implementation answer. The built-in mapping
    produces Patient, Organization, Basic (tddui decision), DocumentReference and the work-list Task.
    """


@hookspec(firstresult=True)
def map_evaluation(document: Any, context: InboundContext) -> list[dict[str, Any]] | None:
    """Map a parsed evaluation document (flux 3) into local FHIR resources.

    Fires once per evaluation fetched after an accepted consent. ``document`` is a
    :class:`vtdui.cda.records.EvaluationDocument`. Return transaction Bundle entries, or ``None``.
    """


@hookspec(firstresult=True)
def map_remote_status(task: dict[str, Any], context: InboundContext) -> list[dict[str, Any]] | None:
    """Map a status read from ViaTrajectoire (flux 5 ESMSTask) onto the local work list.

    Fires for each ESMSTask of flux 5: another establishment's status on a shared decision, or an
    MDPH event (37, 46, 49, 54). Return transaction Bundle entries updating the work-list item, or
    ``None``.
    """


@hookspec
def before_store(entries: list[dict[str, Any]], context: InboundContext) -> None:
    """Amend the transaction entries just before they are written to HAPI.

    Fires for every inbound transaction, after mapping. Implementations mutate ``entries`` in place
    (add an extension, an identifier, a vendor resource). Every implementation is called.
    """


@hookspec
def after_store(entries: list[dict[str, Any]], response: dict[str, Any], context: InboundContext) -> None:
    """Observe a transaction that HAPI committed (``response`` is the transaction-response Bundle).

    Fires after each inbound transaction succeeded. Use it to notify another system; exceptions
    raised here are logged and do not undo the write.
    """


@hookspec
def on_document_rejected(rejected: RejectedDocument, context: InboundContext) -> None:
    """Observe a document that was kept aside (quarantined) instead of being stored.

    Fires when a CDA is malformed, hostile or incomplete, or when its mapping failed. The document is
    already saved in the quarantine with its reason; use this to alert someone. Fires once per document
    and reason: later cycles that retry it and fail the same way do not fire again; a new reason, or a
    failure after the document was stored since, does.
    """


# ---------------------------------------------------------------------------------------------------
# Outbound


@hookspec(firstresult=True)
def build_esms_task(change: StatusChange, context: OutboundContext) -> dict[str, Any] | None:
    """Build the ESMSTask (flux 4) that reports one status change of a work-list item.

    Fires once per detected change (ESMS status, unit status, reason, date or unit). Return the
    ESMSTask resource, or ``None`` to let the next implementation answer. The result is checked by
    :mod:`vtdui.conformance` (IG rules) and :mod:`vtdui.fhir_structure` (FHIR R4 structure) before it is sent.
    """


@hookspec(firstresult=True)
def build_esms_consent(consent: dict[str, Any], context: OutboundContext) -> dict[str, Any] | None:
    """Build the ESMSConsent (flux 2) for a Consent recorded in the DUI.

    Fires once per new local Consent that concerns a decision of the work list. Return the
    ESMSConsent resource, or ``None``. Checked like the ESMSTask of :func:`build_esms_task`.
    """


@hookspec
def before_send(resource: dict[str, Any], flux: str, context: OutboundContext) -> None:
    """Amend or inspect a conformant resource just before it is POSTed to ViaTrajectoire.

    ``flux`` is ``"2"`` (Consent) or ``"4"`` (Task). Only conformant resources reach this hook (a build
    breaking the IG rules fails before it). Implementations may mutate ``resource``; the conformance
    check runs again after this hook, so it can never send a broken resource, and a resource broken
    here fails with a :class:`~vtdui.errors.ConformanceError` whose ``culprit`` is ``"before_send"``.
    """


@hookspec
def after_send(resource: dict[str, Any], response: dict[str, Any], flux: str, context: OutboundContext) -> None:
    """Observe a resource ViaTrajectoire accepted (``response`` is the created resource)."""


@hookspec
def on_send_error(resource: dict[str, Any], error: VtduiError, flux: str, context: OutboundContext) -> None:
    """Observe a failed emission; fires once per failure.

    ``error`` says what failed: a :class:`~vtdui.errors.ConformanceError` for a resource breaking the IG
    rules (``culprit`` ``"build"``: the ``build_esms_*`` result, reported when it is built; ``"before_send"``:
    a ``before_send`` implementation broke it), a :class:`~vtdui.errors.RemoteError` for a refusal by
    ViaTrajectoire, a :class:`~vtdui.errors.RetriableError` for passing faults past
    ``retry.max_age_seconds``, a plain :class:`~vtdui.errors.VtduiError` when a ``before_send`` raised.
    """


# ---------------------------------------------------------------------------------------------------
# Registration


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``vtdui`` command line.

    Fires once when the CLI starts. Call ``cli.add_command(...)`` or decorate functions with
    ``@cli.command()``.
    """
