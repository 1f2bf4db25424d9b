"""The FHIR port of the simulator: ``/oauth/token`` and the SI-SdO Gestionnaire API under ``/fhir``.

Every request goes through, in this order: fault injection, the client certificate of the connection
(checked by TLS, then mapped to its FINESS EJ), the bearer token (issued to that EJ, not expired),
the ``struct_idnat`` header (``"1"`` + a FINESS EG the token lists), then the flux itself. Each answer
that is not a success carries an OperationOutcome; the token endpoint answers RFC 6749 errors.
Everything the DUI sends is recorded for ``GET /_admin/received``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vtdui import conformance, sdo
from vtdui.errors import RuleViolation
from vtdui.simulator.auth import AccessToken, ClientAuthError, client_credentials
from vtdui.simulator.context import PeerCertificate, SearchPage, SimulatorContext
from vtdui.simulator.faults import FaultRule
from vtdui.simulator.fhir_time import LastUpdatedError, format_instant, parse_last_updated
from vtdui.simulator.resources import (
    FHIR_JSON,
    capability_statement,
    document_reference,
    operation_outcome,
    searchset,
)
from vtdui.simulator.state import ReceivedRequest, StoredDecision

__all__ = ["CLIENT_CLOSED", "PEER_CERT_KEY", "TRANSPORT_KEY", "FhirError", "build_fhir_app"]

#: ``scope["state"]`` key where the server protocol puts the DER client certificate of the connection.
PEER_CERT_KEY: Final = "vtdui.peer_cert_der"
#: ``scope["state"]`` key of the connection's transport (fault ``drop`` closes it).
TRANSPORT_KEY: Final = "vtdui.transport"
#: Status recorded for a request whose client disconnected before it was handled (nginx's "client closed request").
CLIENT_CLOSED: Final = 499
#: How long a delayed request waits for a pending disconnection event before it is handled.
_DISCONNECT_PROBE_SECONDS: Final = 0.01

_STRUCT_RE = re.compile(r"^1(?:\d{2}|2A|2B)\d{7}$")
_BODY_LIMIT = 5 * 1024 * 1024
_RECORD_TEXT_LIMIT = 65536


class FhirError(Exception):
    """An error answer: HTTP status + one OperationOutcome issue (or a full OperationOutcome)."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None,
                 outcome: dict[str, Any] | None = None, expression: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome or operation_outcome(code, message, expression=expression)
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Caller:
    """Who is calling: the legal entity of the certificate and the establishment of ``struct_idnat``."""

    finess_ej: str
    finess_eg: str
    struct_idnat: str
    token: AccessToken


def _fhir_response(body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode("utf-8"), status_code=status,
                    headers=dict(headers or {}), media_type=f"{FHIR_JSON};charset=utf-8")


def _ctx(request: Request) -> SimulatorContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, SimulatorContext)
    return ctx


# -- certificate, token, struct_idnat --------------------------------------------------------------


def _peer(request: Request, ctx: SimulatorContext) -> PeerCertificate | None:
    der = request.scope.get("state", {}).get(PEER_CERT_KEY)
    if isinstance(der, bytes | bytearray):
        return ctx.peer_certificate(bytes(der))
    if ctx.settings.plain_http:
        return None
    # TLS with CERT_REQUIRED never lets a connection without certificate this far; refuse anyway
    raise FhirError(401, "security", "a TLS client certificate (IGC-Santé, FINESS EJ) is required")


def _known_ej(peer: PeerCertificate | None, ctx: SimulatorContext) -> str | None:
    if peer is None:
        return None
    if peer.finess_ej is None or ctx.state.legal_entity(peer.finess_ej) is None:
        raise FhirError(403, "security", "the client certificate is not issued to a known legal entity (FINESS EJ "
                                         "in the subject OU)")
    return peer.finess_ej


def _unauthorized(message: str, error: str = "invalid_token") -> FhirError:
    challenge = f'Bearer realm="viatrajectoire-simulator", error="{error}", error_description="{message}"'
    return FhirError(401, "login", message, headers={"WWW-Authenticate": challenge})


def authenticate(request: Request, ctx: SimulatorContext) -> Caller:
    """Check certificate, token and ``struct_idnat``; return the caller.

    Raises:
        FhirError: 401 (certificate/token), 400 (header missing or malformed), 403 (establishment not in token).
    """
    peer = _peer(request, ctx)
    cert_ej = _known_ej(peer, ctx)
    header = request.headers.get("authorization")
    if not header:
        raise FhirError(401, "login", "Authorization: Bearer <access token> is required",
                        headers={"WWW-Authenticate": 'Bearer realm="viatrajectoire-simulator"'})
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <access token>'", "invalid_request")
    token = ctx.tokens.lookup(value.strip())
    if token is None:
        raise _unauthorized("unknown access token")
    if ctx.tokens.is_expired(token):
        raise _unauthorized("the access token has expired: request a new one")
    if peer is not None and (token.finess_ej != cert_ej or token.cert_fingerprint != peer.fingerprint):
        raise _unauthorized("the access token was issued for another client certificate")
    struct = request.headers.get("struct_idnat")
    if struct is None:
        raise FhirError(400, "required", "header struct_idnat is required: '1' + FINESS EG of the establishment "
                                         "the call is made for (check that no proxy drops headers with '_')")
    struct = struct.strip()
    if not _STRUCT_RE.match(struct):
        raise FhirError(400, "value", f"header struct_idnat {struct!r} is malformed: expected '1' + a 9-character "
                                      "FINESS EG, e.g. 1350000017")
    if struct[1:] not in token.finess_eg:
        raise FhirError(403, "forbidden", f"establishment {struct[1:]} is not among the FINESS EG of the access "
                                          "token's legal entity")
    return Caller(token.finess_ej, struct[1:], struct, token)


# -- token endpoint -----------------------------------------------------------------------------------


def _oauth_error(error: ClientAuthError) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="viatrajectoire-simulator"'
    return JSONResponse({"error": error.error, "error_description": error.description}, status_code=error.status,
                        headers=headers)


def _token_policy(ctx: SimulatorContext, fields: Mapping[str, str]) -> None:
    """Apply the token policy armed through the admin API (how credentials come, which scope is required)."""
    policy = ctx.token_policy
    in_form = "client_id" in fields or "client_secret" in fields
    if policy.get("client_auth") == "basic" and in_form:
        raise ClientAuthError("invalid_client", "this server authenticates clients with HTTP Basic only", 401)
    if policy.get("client_auth") == "form" and not in_form:
        raise ClientAuthError("invalid_client", "this server wants client_id and client_secret in the form body",
                              401)
    wanted = policy.get("scope")
    if wanted and wanted not in fields.get("scope", "").split():
        raise ClientAuthError("invalid_scope", f"scope {wanted!r} is required")


async def token_endpoint(request: Request) -> Response:
    """``POST /oauth/token``: client_credentials over mTLS (RFC 6749 §4.4)."""
    ctx = _ctx(request)
    try:
        peer = _peer(request, ctx)
        cert_ej = _known_ej(peer, ctx)
    except FhirError as exc:
        return _oauth_error(ClientAuthError("invalid_client", str(exc), 401))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return _oauth_error(ClientAuthError("invalid_request",
                                            "Content-Type must be application/x-www-form-urlencoded"))
    # parsed here: Starlette's form parser needs python-multipart, a dependency for one urlencoded body
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return _oauth_error(ClientAuthError("invalid_request", "the form body is not UTF-8"))
    fields = dict(pairs)
    try:
        client_id, secret = client_credentials(request.headers.get("authorization"), fields)
        _token_policy(ctx, fields)
        if fields.get("grant_type") != "client_credentials":
            raise ClientAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if not (_same(client_id, ctx.pki.client_id) and _same(secret, ctx.pki.client_secret)):
            raise ClientAuthError("invalid_client", "unknown client or wrong secret", 401)
    except ClientAuthError as exc:
        return _oauth_error(exc)
    if cert_ej is None:  # plain-HTTP debug mode: the first legal entity
        entity = ctx.state.entities[0]
        fingerprint = ""
    else:
        found = ctx.state.legal_entity(cert_ej)
        assert found is not None and peer is not None
        entity, fingerprint = found, peer.fingerprint
    token = ctx.tokens.issue(entity.finess_ej, tuple(e.finess_eg for e in entity.establishments), fingerprint)
    return JSONResponse({"access_token": token.value, "token_type": "Bearer",
                         "expires_in": int(ctx.settings.token_lifetime),
                         "finess_ej": entity.finess_ej, "finess_eg": list(token.finess_eg)},
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# -- search helpers -----------------------------------------------------------------------------------


def _params(request: Request, allowed: set[str]) -> dict[str, str]:
    items = request.query_params.multi_items()
    out: dict[str, str] = {}
    for key, value in items:
        if key not in allowed:
            raise FhirError(400, "not-supported", f"search parameter {key!r} is not supported here "
                                                  f"(allowed: {', '.join(sorted(allowed))})")
        if key in out:
            raise FhirError(400, "invalid", f"search parameter {key!r} is repeated")
        out[key] = value
    return out


def _bound(ctx: SimulatorContext, raw: str | None) -> datetime:
    if raw is None:
        raise FhirError(400, "required", "_lastUpdated=gt<instant> is required (date of the last search, J-1; "
                                         "J-30 on first connection)")
    try:
        bound = parse_last_updated(raw)
    except LastUpdatedError as exc:
        raise FhirError(400, "invalid", str(exc), expression="_lastUpdated") from exc
    days = ctx.settings.max_lookback_days
    if days is not None and bound < ctx.state.tick() - timedelta(days=days):
        raise FhirError(400, "too-costly", f"_lastUpdated is more than {days} days back (J-{days} at most)")
    return bound


def _count(ctx: SimulatorContext, raw: str | None) -> int | None:
    if raw is None:
        return ctx.settings.page_size
    if not raw.isdigit() or int(raw) < 1:
        raise FhirError(400, "invalid", f"_count must be a positive integer, got {raw!r}")
    return min(int(raw), ctx.settings.max_count)


def _token_param(raw: str | None, name: str) -> str | None:
    r"""A token search value: ``code`` or ``system|code`` → the code (the system is not used by the IG).

    FHIR escaping applies: ``\|`` is a ``|`` inside the code, not the separator (same for ``\,``, ``\$``, ``\\``).
    """
    if raw is None:
        return None
    parts: list[str] = []
    current: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts[-1]


def _self_url(request: Request, ctx: SimulatorContext, resource_type: str) -> str:
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{ctx.fhir_base_url}/{resource_type}" + (f"?{query}" if query else "")


def _paged(ctx: SimulatorContext, caller: Caller, resource_type: str, ids: list[str], count: int | None,
           self_url: str, offset: int = 0) -> tuple[list[str], str | None]:
    """This page's ids and the ``next`` link (a new opaque token) when more remain."""
    if count is None or offset + count >= len(ids):
        return ids[offset:], None
    token = ctx.save_page(SearchPage(caller.finess_eg, resource_type, tuple(ids), offset + count, count, self_url))
    return ids[offset:offset + count], f"{ctx.fhir_base_url}/{resource_type}?{urlencode({'_getpages': token})}"


def _decision_entries(ctx: SimulatorContext, ids: list[str]) -> list[dict[str, Any]]:
    out = []
    with ctx.state.lock:  # an admin update must not interleave version and lastUpdated of one entry
        for docref_id in ids:
            found = ctx.state.decision_by_docref(docref_id)
            if found is not None:
                out.append(document_reference(found[0], found[1], subsetted=True))
    return out


def _task_entries(ctx: SimulatorContext, ids: list[str]) -> list[dict[str, Any]]:
    with ctx.state.lock:
        return [ctx.state.tasks[i].resource for i in ids if i in ctx.state.tasks]


def _next_page(request: Request, ctx: SimulatorContext, caller: Caller, resource_type: str,
               params: Mapping[str, str]) -> Response:
    if set(params) != {"_getpages"}:
        raise FhirError(400, "invalid", "_getpages cannot be combined with other parameters: follow link[next] as is")
    page = ctx.page(params["_getpages"])
    if page is None or page.resource_type != resource_type or page.finess_eg != caller.finess_eg:
        raise FhirError(404, "not-found", "unknown or expired page token: run the search again")
    ids, next_url = _paged(ctx, caller, resource_type, list(page.ids), page.count, page.self_url, page.offset)
    if resource_type == "Task":
        entries, profile = _task_entries(ctx, ids), sdo.PROFILE_BUNDLE_NOTIFICATION
    else:
        entries, profile = _decision_entries(ctx, ids), sdo.PROFILE_BUNDLE_DECISION_EVALUATION
    return _fhir_response(searchset(entries, profile=profile, base_url=ctx.fhir_base_url, total=len(page.ids),
                                    self_url=_self_url(request, ctx, resource_type), next_url=next_url))


# -- flux 1.1 / 3.1 / 1.3 -----------------------------------------------------------------------------


async def search_document_reference(request: Request) -> Response:
    """Flux 1.1 (``type=57830-2&_lastUpdated=gt…&_elements=id``) and flux 3.1 (``identifier=…&type=51848-0``)."""
    ctx = _ctx(request)
    caller = authenticate(request, ctx)
    params = _params(request, {"type", "_lastUpdated", "_elements", "_count", "identifier", "_getpages"})
    if "_getpages" in params:
        return _next_page(request, ctx, caller, "DocumentReference", params)
    doc_type = _token_param(params.get("type"), "type")
    if doc_type is None:
        raise FhirError(400, "required", "search parameter type is required: 57830-2 (flux 1.1) or 51848-0 (flux 3.1)")
    if doc_type == sdo.TYPE_DECISION:
        return _flux_1_1(request, ctx, caller, params)
    if doc_type == sdo.TYPE_EVALUATION:
        return _flux_3_1(request, ctx, caller, params)
    raise FhirError(400, "code-invalid", f"type {doc_type!r} is not searchable: 57830-2 (decision) or 51848-0 "
                                         "(evaluation)", expression="type")


def _flux_1_1(request: Request, ctx: SimulatorContext, caller: Caller, params: Mapping[str, str]) -> Response:
    if "identifier" in params:
        raise FhirError(400, "not-supported", "flux 1.1 searches by type, _lastUpdated and _elements only")
    bound = _bound(ctx, params.get("_lastUpdated"))
    elements = params.get("_elements")
    if elements is None:
        raise FhirError(400, "required", "_elements=id is required in flux 1.1 (ids first, then one read per id)")
    if elements != "id":
        raise FhirError(400, "not-supported", f"_elements must be 'id' in flux 1.1, got {elements!r}")
    count = _count(ctx, params.get("_count"))
    ids = [d.docref_id for d in ctx.state.decisions_for(caller.finess_eg, bound)]
    self_url = _self_url(request, ctx, "DocumentReference")
    page_ids, next_url = _paged(ctx, caller, "DocumentReference", ids, count, self_url)
    bundle = searchset(_decision_entries(ctx, page_ids), profile=sdo.PROFILE_BUNDLE_DECISION_EVALUATION,
                       base_url=ctx.fhir_base_url, total=len(ids), self_url=self_url, next_url=next_url)
    return _fhir_response(bundle)


def _flux_3_1(request: Request, ctx: SimulatorContext, caller: Caller, params: Mapping[str, str]) -> Response:
    extra = set(params) - {"type", "identifier", "_count"}
    if extra:
        raise FhirError(400, "not-supported", f"flux 3.1 searches by identifier and type only (got {sorted(extra)})")
    id_nat = _token_param(params.get("identifier"), "identifier")
    if not id_nat:
        raise FhirError(400, "required", "identifier=<idNat_Decision> is required in flux 3.1")
    self_url = _self_url(request, ctx, "DocumentReference")
    with ctx.state.lock:
        decision = ctx.state.decisions.get(id_nat)
    entries: list[dict[str, Any]] = []
    if decision is not None and caller.finess_eg in decision.notified_to:
        if ctx.state.has_consent(id_nat, caller.finess_eg):
            with ctx.state.lock:
                entries.append(document_reference(decision, "evaluation"))
        elif ctx.settings.evaluation_without_consent == "403":
            raise FhirError(403, "forbidden", "no consent (flux 2) of this establishment for this decision: "
                                              "POST Consent first")
    return _fhir_response(searchset(entries, profile=sdo.PROFILE_BUNDLE_DECISION_EVALUATION,
                                    base_url=ctx.fhir_base_url, total=len(entries), self_url=self_url))


async def read_document_reference(request: Request) -> Response:
    """Flux 1.3: ``GET /DocumentReference/{id}`` → the full ESMSDocumentReference with the base64 CDA."""
    ctx = _ctx(request)
    caller = authenticate(request, ctx)
    docref_id = request.path_params["id"]
    found = ctx.state.decision_by_docref(docref_id)
    not_found = FhirError(404, "not-found", f"DocumentReference/{docref_id} is unknown or not notified to "
                                            f"establishment {caller.finess_eg}")
    if found is None or caller.finess_eg not in found[0].notified_to:
        raise not_found
    decision, kind = found
    if kind == "evaluation" and not ctx.state.has_consent(decision.id_nat_decision, caller.finess_eg):
        if ctx.settings.evaluation_without_consent == "403":
            raise FhirError(403, "forbidden", "no consent (flux 2) of this establishment for this decision")
        raise not_found
    with ctx.state.lock:
        resource = document_reference(decision, kind)
    return _fhir_response(resource, headers=_version_headers(resource))


def _version_headers(resource: Mapping[str, Any]) -> dict[str, str]:
    meta = resource.get("meta", {})
    return {"ETag": f'W/"{meta.get("versionId", "1")}"'}


# -- flux 2 / 4 --------------------------------------------------------------------------------------


async def _json_body(request: Request, resource_type: str) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    request.state.received_body = _recordable(raw)
    if content_type not in ("application/fhir+json", "application/json"):
        raise FhirError(415, "not-supported", f"Content-Type {content_type or '(none)'!r} is not supported: send "
                                              "application/fhir+json")
    if len(raw) > _BODY_LIMIT:
        raise FhirError(413, "too-costly", "request body too large")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FhirError(400, "structure", f"the body is not valid JSON (UTF-8): {exc}") from exc
    request.state.received_body = body
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a FHIR resource)")
    if body.get("resourceType") != resource_type:
        raise FhirError(400, "structure", f"resourceType must be {resource_type!r} on this endpoint, got "
                                          f"{body.get('resourceType')!r}")
    return body


def _recordable(raw: bytes) -> Any:
    text = raw[:_RECORD_TEXT_LIMIT].decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _reject(request: Request, violations: list[RuleViolation]) -> None:
    request.state.validation = [_violation_dict(v) for v in violations]
    if conformance.has_errors(violations):
        raise FhirError(422, "processing", "resource rejected", outcome=conformance.to_operation_outcome(violations))


def _violation_dict(v: RuleViolation) -> dict[str, str]:
    return {"rule": v.rule, "path": v.path, "message": v.message, "severity": v.severity}


def _decision_for(ctx: SimulatorContext, caller: Caller, id_nat: str | None, path: str) -> StoredDecision:
    with ctx.state.lock:
        decision = ctx.state.decisions.get(id_nat or "")
    if decision is None:
        raise _business(f"idNat_Decision {id_nat!r} is unknown to ViaTrajectoire", path, "not-found")
    if caller.finess_eg not in decision.notified_to:
        raise _business(f"decision {id_nat} is not notified to establishment {caller.finess_eg}", path, "forbidden")
    return decision


def _business(message: str, path: str, rule: str) -> FhirError:
    violation = RuleViolation(f"sdo-{rule}", path, message)
    error = FhirError(422, "business-rule", message, outcome=conformance.to_operation_outcome([violation]))
    error.outcome["issue"][0]["code"] = "business-rule"
    return error


def _created(ctx: SimulatorContext, resource: dict[str, Any]) -> Response:
    location = f"{ctx.fhir_base_url}/{resource['resourceType']}/{resource['id']}/_history/1"
    return _fhir_response(resource, 201, {"Location": location, "ETag": 'W/"1"',
                                          "Last-Modified": resource["meta"]["lastUpdated"]})


async def create_consent(request: Request) -> Response:
    """Flux 2: ``POST /Consent`` (ESMSConsent) → 201 + Location; 422 with every broken rule."""
    ctx = _ctx(request)
    caller = authenticate(request, ctx)
    body = await _json_body(request, "Consent")
    violations = conformance.check_esms_consent(body, expected_struct=caller.struct_idnat)
    _reject(request, violations)
    id_nat = _consent_decision(body)
    decision = _decision_for(ctx, caller, id_nat, "Consent.provision.data[0].reference.identifier.value")
    stored = ctx.state.add_consent(caller.finess_eg, decision.id_nat_decision, body)
    return _created(ctx, stored.resource)


def _consent_decision(body: Mapping[str, Any]) -> str | None:
    try:
        value = body["provision"]["data"][0]["reference"]["identifier"]["value"]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _task_input(body: Mapping[str, Any], code: str) -> Any:
    for item in body.get("input", []) if isinstance(body.get("input"), list) else []:
        if not isinstance(item, Mapping):
            continue
        codings = item.get("type", {}).get("coding", []) if isinstance(item.get("type"), Mapping) else []
        if any(isinstance(c, Mapping) and c.get("code") == code for c in codings):
            return item
    return None


def _identifier_value(item: Any) -> str | None:
    if isinstance(item, Mapping) and isinstance(item.get("valueIdentifier"), Mapping):
        value = item["valueIdentifier"].get("value")
        return value if isinstance(value, str) else None
    return None


async def create_task(request: Request) -> Response:
    """Flux 4: ``POST /Task`` (ESMSTask) → 201 + Location ``Task/{id}/_history/1``; a new Task per event."""
    ctx = _ctx(request)
    caller = authenticate(request, ctx)
    body = await _json_body(request, "Task")
    violations = conformance.check_esms_task(body, terminology=ctx.terminology.terminology(),
                                             expected_struct=caller.struct_idnat)
    _reject(request, violations)
    id_nat = _identifier_value(_task_input(body, sdo.ID_NAT_DECISION))
    decision = _decision_for(ctx, caller, id_nat, "Task.input:idNat_Decision")
    id_decision = _identifier_value(_task_input(body, sdo.ID_DECISION))
    if id_decision != decision.id_decision:
        raise _business(f"idDecision {id_decision!r} does not belong to decision {decision.id_nat_decision} "
                        f"(expected {decision.id_decision!r})", "Task.input:idDecision", "id-decision")
    served = {k: v for k, v in body.items() if k not in ("id", "meta")}
    served["meta"] = {**{k: v for k, v in body.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}}
    stored = ctx.state.add_task("flux4", caller.finess_eg, decision.id_nat_decision, served)
    return _created(ctx, stored.resource)


# -- flux 5 ------------------------------------------------------------------------------------------


async def search_task(request: Request) -> Response:
    """Flux 5.1: ``GET /Task?_lastUpdated=gt…`` → the ESMSTask of other establishments and of the MDPH."""
    ctx = _ctx(request)
    caller = authenticate(request, ctx)
    params = _params(request, {"_lastUpdated", "_count", "_getpages"})
    if "_getpages" in params:
        return _next_page(request, ctx, caller, "Task", params)
    bound = _bound(ctx, params.get("_lastUpdated"))
    count = _count(ctx, params.get("_count"))
    ids = [t.id for t in ctx.state.tasks_for(caller.finess_eg, bound, ctx.settings.flux5_other_statuses)]
    self_url = _self_url(request, ctx, "Task")
    page_ids, next_url = _paged(ctx, caller, "Task", ids, count, self_url)
    return _fhir_response(searchset(_task_entries(ctx, page_ids), profile=sdo.PROFILE_BUNDLE_NOTIFICATION,
                                    base_url=ctx.fhir_base_url, total=len(ids), self_url=self_url,
                                    next_url=next_url))


async def read_task(request: Request) -> Response:
    """``GET /Task/{id}``: a Task the caller may see in flux 5, or one it posted."""
    ctx = _ctx(request)
    caller = authenticate(request, ctx)
    task_id = request.path_params["id"]
    with ctx.state.lock:
        task = ctx.state.tasks.get(task_id)
        visible = task is not None and (
            (task.origin == "flux4" and task.finess_eg == caller.finess_eg)
            or ctx.state.task_visible_to(task, caller.finess_eg, ctx.settings.flux5_other_statuses))
    if task is None or not visible:
        raise FhirError(404, "not-found", f"Task/{task_id} is unknown or not visible to establishment "
                                          f"{caller.finess_eg}")
    return _fhir_response(task.resource, headers=_version_headers(task.resource))


# -- others ------------------------------------------------------------------------------------------


async def metadata(request: Request) -> Response:
    """``GET /metadata``: the CapabilityStatement (certificate required, no token)."""
    ctx = _ctx(request)
    _peer(request, ctx)
    return _fhir_response(capability_statement(ctx.fhir_base_url, format_instant(ctx.started_at)))


async def unsupported(request: Request) -> Response:
    """Anything else under ``/fhir``: 404 for unknown resources, 405 for known ones with another method."""
    ctx = _ctx(request)
    authenticate(request, ctx)
    raise FhirError(404, "not-supported", f"{request.method} {request.url.path} is not part of the SI-SdO "
                                          "Gestionnaire interface (IG ans.fhir.fr.sdo 4.0.7)")


async def _fhir_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return _fhir_response(exc.outcome, exc.status, exc.headers)


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (paths outside the API, wrong method) as OperationOutcomes too."""
    status = int(getattr(exc, "status_code", 500))
    code = "not-supported" if status in (404, 405) else "exception"
    message = f"{request.method} {request.url.path}: " + ("no such endpoint" if status == 404 else
                                                          "method not allowed" if status == 405 else "error")
    headers = dict(getattr(exc, "headers", None) or {})
    return _fhir_response(operation_outcome(code, message), status, headers)


# -- faults and recording ----------------------------------------------------------------------------


class _Wrapper:
    """ASGI wrapper: fault injection before the app, recording of every request after it."""

    def __init__(self, app: ASGIApp, ctx: SimulatorContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        method, path = scope["method"], scope["path"]
        rule = self.ctx.faults.take(method, path)
        status_holder = [0]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = int(message["status"])
            await send(message)

        if rule is not None:
            if rule.delay:
                receive, gone = await self._hold(rule, scope, receive, state)
                if gone:  # a server does not act on a request whose client went away before it was handled
                    self._record(scope, state, CLIENT_CLOSED)
                    return
            if rule.action == "drop":
                transport = state.get(TRANSPORT_KEY)
                if transport is not None:
                    transport.abort()
                    self._record(scope, state, 0)
                    return
            if rule.action == "expire-token":
                header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
                self.ctx.tokens.expire(header.partition(" ")[2].strip())
            if rule.action == "body":
                raw = Response((rule.body or "").encode("utf-8"), status_code=rule.status or 200,
                               media_type=rule.content_type)
                await raw(scope, receive, recording_send)
                self._record(scope, state, status_holder[0])
                return
            if rule.status is not None:
                headers = {"Retry-After": _seconds(rule.retry_after)} if rule.retry_after is not None else {}
                response = _fhir_response(operation_outcome(
                    "transient" if rule.status in (429, 503) else "exception",
                    f"injected fault: HTTP {rule.status}"), rule.status, headers)
                await response(scope, receive, recording_send)
                self._record(scope, state, status_holder[0])
                return
        await self.app(scope, receive, recording_send)
        self._record(scope, state, status_holder[0])

    async def _hold(self, rule: FaultRule, scope: Scope, receive: Receive,
                    state: dict[str, Any]) -> tuple[Receive, bool]:
        """Read the request, keep it ``rule.delay`` seconds, then tell whether its client is still connected.

        Returns:
            A ``receive`` that hands the request body to the app again, and whether the client disconnected
            (before its body arrived or during the delay).
        """
        buffered: list[Message] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive, True
            buffered.append(message)
            more = bool(message.get("more_body"))
        state["received_body"] = _recordable(b"".join(m.get("body", b"") for m in buffered))
        client = scope.get("client")
        handle = self.ctx.faults.hold(rule, scope["method"], scope["path"],
                                      (str(client[0]), int(client[1])) if client else None, state["received_body"])
        try:
            await asyncio.sleep(rule.delay)
            # the whole body has been read: the server's next message can only be a disconnection
            try:
                message = await asyncio.wait_for(receive(), _DISCONNECT_PROBE_SECONDS)
            except TimeoutError:
                pass
            else:
                if message["type"] == "http.disconnect":
                    return receive, True
                buffered.append(message)
        finally:
            self.ctx.faults.release(handle)

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        return replay, False

    def _record(self, scope: Scope, state: Mapping[str, Any], status: int) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.ctx.state.record(ReceivedRequest(
            at=self.ctx.state.clock(), method=scope["method"], path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"), struct_idnat=headers.get("struct_idnat"),
            body=state.get("received_body"), validation=list(state.get("validation", [])), status=status))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def build_fhir_app(ctx: SimulatorContext) -> ASGIApp:
    """The ASGI app of the FHIR port."""
    handler: Callable[[Request, Exception], Awaitable[Response]] = _fhir_error_handler
    app = Starlette(routes=[
        Route("/oauth/token", token_endpoint, methods=["POST"]),
        Route("/fhir/metadata", metadata, methods=["GET"]),
        Route("/fhir/DocumentReference", search_document_reference, methods=["GET"]),
        Route("/fhir/DocumentReference/{id}", read_document_reference, methods=["GET"]),
        Route("/fhir/Consent", create_consent, methods=["POST"]),
        Route("/fhir/Task", search_task, methods=["GET"]),
        Route("/fhir/Task", create_task, methods=["POST"]),
        Route("/fhir/Task/{id}", read_task, methods=["GET"]),
        Route("/fhir/{rest:path}", unsupported, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ], exception_handlers={FhirError: handler, 404: _http_error_handler, 405: _http_error_handler})
    app.state.ctx = ctx
    return _Wrapper(app, ctx)
