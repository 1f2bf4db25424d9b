"""The admin / MDPH back door of the simulator (plain HTTP, loopback only), outside the IG API.

Routes (JSON in, JSON out)::

    GET  /_admin/info                          URLs, client credentials, certificates, establishments
    GET  /_admin/decisions                     decisions and whom they are notified to
    POST /_admin/decisions                     {"count": N} or one decision:
                                               {"notified_to": [EG...], "id_decision", "id_nat_decision",
                                               "set_id": "01" (CDA setId of the 2024 samples, not idNat)}
    POST /_admin/decisions/{idNat}/update      new document version (versionNumber+1, RPLC, lastUpdated moves)
    PUT  /_admin/decisions/{idNat}/document?kind=decision|evaluation
                                               serve the request body (any bytes, e.g. a hostile CDA) as that
                                               document until the next update: rehearses the DUI's quarantine
    POST /_admin/events                        MDPH event (37/39/46/49/54) or another establishment's status;
                                               "struct_level": "ej" gives an MDPH event the EJ's idNat_Struct,
                                               "input_typing": "text" types the inputs by type.text only
    POST /_admin/decisions/{idNat}/reprise     tag for take-over ("mode reprise"): an old study with this
                                               establishment's own statuses entered in ViaTrajectoire's
                                               screens: {"finess_eg", "statuses": [{"statut_esms",
                                               "motif_esms", "date_statut_esms"}, ...]} (oldest first)
    GET  /_admin/received?since=N              what the DUI sent (method, path, struct_idnat, body, validation, status)
    GET|POST|DELETE /_admin/faults             armed faults (see vtdui.simulator.faults): status, delay,
                                               drop, expire-token, body (a raw answer: any text, status and
                                               content type, e.g. malformed JSON for a read)
    POST /_admin/tokens/expire                 make every access token expire
    GET|PUT /_admin/token-policy               what the token endpoint requires: {"client_auth": "any" |
                                               "basic" | "form", "scope": null | "<scope>"}
    POST /_admin/reset                         back to the seeded dataset
    POST /_admin/terminology/valuesets         {"url", "add": [{system, code, display}], "remove": [...], "version"}
    POST /_admin/terminology/conceptmaps       {"url", "add": [{source, target}], "remove": [...], "version"}
                                               (ASS_A32: status -> motifs allowed)
    GET  /_admin/terminology/fhir/...          FHIR terminology endpoint: ValueSet?url=, ValueSet/$expand,
                                               CodeSystem?url=, ConceptMap?url=, metadata
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from vtdui import conformance, sdo
from vtdui.simulator.context import SimulatorContext, TerminologyState
from vtdui.simulator.fhir_time import format_instant
from vtdui.simulator.resources import FHIR_JSON, esms_task, operation_outcome, searchset
from vtdui.simulator.state import StoredDecision, StoredTask, TaskOrigin

__all__ = ["MDPH_STATUSES", "build_admin_app", "info_document"]

#: Statuses the MDPH / ViaTrajectoire emits (brief §6.1): cancellation, notification, ratified refusal ...
MDPH_STATUSES = frozenset({"37", "39", "46", "49", "54"})


class AdminError(Exception):
    """A bad admin request: 400/404/422 with a message."""

    def __init__(self, status: int, message: str, outcome: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


def _ctx(request: Request) -> SimulatorContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, SimulatorContext)
    return ctx


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise AdminError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AdminError(400, "body must be a JSON object")
    return data


def info_document(ctx: SimulatorContext) -> dict[str, Any]:
    """Everything a DUI (or a test) needs to connect: URLs, credentials, certificates, establishments."""
    pki = ctx.pki
    entities = []
    for entity in ctx.state.entities:
        creds = pki.clients[entity.finess_ej]
        entities.append({
            "finess_ej": entity.finess_ej, "name": entity.name,
            "cert_file": str(creds.cert), "key_file": str(creds.key),
            "p12_file": str(creds.p12) if creds.p12 else None, "p12_password": creds.p12_password,
            "establishments": [{
                "finess_eg": est.finess_eg, "id_nat_struct": est.id_nat_struct, "name": est.name,
                "is_esat": est.is_esat, "kind": est.kind,
                "units": [{"id_unite": u.id_unite, "nom_unite": u.nom_unite,
                           "categorie_organisation": u.categorie_organisation,
                           "mode_prise_charge": u.mode_prise_charge, "temporalite_accueil": u.temporalite_accueil}
                          for u in est.units],
            } for est in entity.establishments],
        })
    s = ctx.settings
    return {
        "fhir_base_url": ctx.fhir_base_url, "token_url": ctx.token_url, "admin_url": ctx.admin_url,
        "terminology_url": f"{ctx.admin_url}/terminology/fhir",
        "client_id": pki.client_id, "client_secret": pki.client_secret,
        "ca_cert": str(pki.ca_cert), "server_cert": str(pki.server_cert),
        "unknown_client": {"cert_file": str(pki.unknown.cert), "key_file": str(pki.unknown.key),
                           "ca_cert": str(pki.unknown_ca_cert)},
        "config_path": str(s.data_dir / "vtdui.toml"),
        "seed": s.seed, "token_lifetime": s.token_lifetime, "page_size": s.page_size,
        "evaluation_without_consent": s.evaluation_without_consent, "plain_http": s.plain_http,
        "legal_entities": entities,
        "decision_count": len(ctx.state.decisions),
    }


def _decision_summary(d: StoredDecision) -> dict[str, Any]:
    return {"id_nat_decision": d.id_nat_decision, "id_decision": d.id_decision, "docref_id": d.docref_id,
            "eval_docref_id": d.eval_docref_id, "version": d.version,
            "last_updated": format_instant(d.last_updated), "notified_to": list(d.notified_to)}


def _task_summary(t: StoredTask) -> dict[str, Any]:
    return {"id": t.id, "origin": t.origin, "finess_eg": t.finess_eg, "id_nat_decision": t.id_nat_decision,
            "last_updated": format_instant(t.last_updated), "resource": t.resource}


async def info(request: Request) -> Response:
    """``GET /_admin/info``."""
    return JSONResponse(info_document(_ctx(request)))


async def list_decisions(request: Request) -> Response:
    """``GET /_admin/decisions``."""
    ctx = _ctx(request)
    with ctx.state.lock:
        items = [_decision_summary(d) for d in ctx.state.decisions.values()]
    return JSONResponse({"decisions": items})


async def create_decisions(request: Request) -> Response:
    """``POST /_admin/decisions``: generate ``count`` decisions, or one with the given fields."""
    ctx = _ctx(request)
    body = await _json(request)
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100_000:
        raise AdminError(400, "'count' must be an integer between 1 and 100000")
    notified = body.get("notified_to")
    if notified is not None and (not isinstance(notified, list) or not all(isinstance(e, str) for e in notified)
                                 or not notified):
        raise AdminError(400, "'notified_to' must be a non-empty list of FINESS EG")
    fixed = {k: body[k] for k in ("id_decision", "id_nat_decision") if body.get(k)}
    if fixed and count != 1:
        raise AdminError(400, "id_decision / id_nat_decision can only be given for a single decision")
    set_id = body.get("set_id")
    if set_id is not None and (not isinstance(set_id, str) or not set_id.strip()):
        raise AdminError(400, "'set_id' must be a non-empty string")
    created = []
    try:
        for _ in range(count):
            stored = ctx.state.add_decision(notified_to=notified, **fixed)
            stored.set_id = set_id
            created.append(stored)
    except ValueError as exc:
        raise AdminError(422, str(exc)) from exc
    return JSONResponse({"decisions": [_decision_summary(d) for d in created]}, status_code=201)


async def update_decision(request: Request) -> Response:
    """``POST /_admin/decisions/{idNat}/update``: publish a new version of the decision's documents."""
    ctx = _ctx(request)
    id_nat = request.path_params["id_nat"]
    try:
        stored = ctx.state.update_decision(id_nat)
    except KeyError as exc:
        raise AdminError(404, f"unknown idNat_Decision {id_nat!r}") from exc
    return JSONResponse(_decision_summary(stored))


#: Largest document the admin API accepts to serve (room for oversized-document tests).
MAX_RAW_DOCUMENT = 64 * 1024 * 1024


async def replace_document(request: Request) -> Response:
    """``PUT /_admin/decisions/{idNat}/document?kind=decision|evaluation``: serve these bytes as the document."""
    ctx = _ctx(request)
    id_nat = request.path_params["id_nat"]
    kind = request.query_params.get("kind", "decision")
    if kind not in ("decision", "evaluation"):
        raise AdminError(400, "'kind' must be 'decision' or 'evaluation'")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_RAW_DOCUMENT:
            raise AdminError(413, f"a document is at most {MAX_RAW_DOCUMENT} bytes here")
    if not data:
        raise AdminError(400, "the request body (the document bytes) is empty")
    try:
        stored = ctx.state.replace_document(id_nat, "evaluation" if kind == "evaluation" else "decision", bytes(data))
    except KeyError as exc:
        raise AdminError(404, f"unknown idNat_Decision {id_nat!r}") from exc
    return JSONResponse({**_decision_summary(stored), "kind": kind, "bytes": len(data)})


def _pair(body: dict[str, Any], key: str) -> tuple[str, str | None] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str | int):
        return str(value), None
    if isinstance(value, dict) and value.get("code"):
        return str(value["code"]), value.get("display")
    raise AdminError(400, f"'{key}' must be a code or {{'code', 'display'}}")


def _date(body: dict[str, Any], key: str) -> date | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise AdminError(400, f"'{key}' must be a date YYYY-MM-DD") from exc


def _with_display(ctx: SimulatorContext, pair: tuple[str, str | None] | None,
                  system: str) -> tuple[str, str | None] | None:
    if pair is None or pair[1] is not None:
        return pair
    return pair[0], ctx.terminology.terminology().display(system, pair[0])


async def create_event(request: Request) -> Response:
    """``POST /_admin/events``: an MDPH event or another establishment's status, served through flux 5.

    Body: ``id_nat_decision``; ``source`` = ``mdph`` (default) or ``esms``; ``finess_eg`` (MDPH: the
    establishment concerned, default every notified one; ESMS: the establishment that reports);
    ``statut_esms``, ``motif_esms``, ``date_statut_esms``, ``description``, ``nom_esms``; unit block:
    ``id_unite`` (a ROR unit of that establishment), ``statut_unite``, ``motif_unite``, ``date_statut_unite``.
    """
    ctx = _ctx(request)
    body = await _json(request)
    source = body.get("source", "mdph")
    if source not in ("mdph", "esms"):
        raise AdminError(400, "'source' must be 'mdph' or 'esms'")
    id_nat = body.get("id_nat_decision")
    with ctx.state.lock:
        decision = ctx.state.decisions.get(str(id_nat))
    if decision is None:
        raise AdminError(404, f"unknown idNat_Decision {id_nat!r}")
    struct_level = body.get("struct_level", "eg")
    typing = body.get("input_typing", "coding")
    if struct_level not in ("eg", "ej") or typing not in ("coding", "text"):
        raise AdminError(400, "'struct_level' must be 'eg' or 'ej'; 'input_typing' 'coding' or 'text'")
    statut = _with_display(ctx, _pair(body, "statut_esms"), sdo.TRE_R357)
    statut_unite = _with_display(ctx, _pair(body, "statut_unite"), sdo.TRE_R357)
    if source == "mdph":
        if statut is None or statut[0] not in MDPH_STATUSES:
            raise AdminError(400, f"an MDPH event needs statut_esms in {sorted(MDPH_STATUSES)}")
        targets = [str(body["finess_eg"])] if body.get("finess_eg") else list(decision.notified_to)
        for eg in targets:
            if eg not in decision.notified_to:
                raise AdminError(422, f"decision {decision.id_nat_decision} is not notified to {eg}")
    else:
        if not body.get("finess_eg"):
            raise AdminError(400, "'finess_eg' (the reporting establishment) is required for source 'esms'")
        if statut is None and statut_unite is None:
            raise AdminError(400, "give statut_esms and/or statut_unite")
        targets = [str(body["finess_eg"])]
    tasks = []
    for eg in targets:
        est = ctx.state.establishment(eg)
        name = body.get("nom_esms") or (est.name if est else None)
        if not name:
            raise AdminError(400, f"'nom_esms' is required: {eg} is not an establishment of the dataset")
        unit = None
        if body.get("id_unite"):
            match = next((u for u in (est.units if est else ()) if u.id_unite == body["id_unite"]), None)
            if match is None:
                raise AdminError(400, f"unit {body['id_unite']!r} is not a ROR unit of {eg}")
            unit = {"id_unite": match.id_unite, "nom_unite": match.nom_unite,
                    "categorie_organisation": match.categorie_organisation,
                    "mode_prise_charge": match.mode_prise_charge, "temporalite_accueil": match.temporalite_accueil}
        today = ctx.state.tick().date()
        struct = "1" + eg
        if struct_level == "ej" and source == "mdph":
            struct = "1" + next(e.finess_ej for e in ctx.state.entities
                                for x in e.establishments if x.finess_eg == eg)
        task = esms_task(
            id_nat_struct=struct, nom_esms=str(name), id_decision=decision.id_decision,
            id_nat_decision=decision.id_nat_decision, statut_esms=statut,
            motif_esms=_with_display(ctx, _pair(body, "motif_esms"), sdo.TRE_R358),
            date_statut_esms=_date(body, "date_statut_esms") or (today if statut else None),
            unit=unit, statut_unite=statut_unite,
            motif_unite=_with_display(ctx, _pair(body, "motif_unite"), sdo.TRE_R358),
            date_statut_unite=_date(body, "date_statut_unite") or (today if statut_unite else None),
            description=body.get("description"),
        )
        violations = conformance.check_esms_task(task, terminology=ctx.terminology.terminology())
        if conformance.has_errors(violations):
            raise AdminError(422, "the event would not be a conformant ESMSTask",
                             conformance.to_operation_outcome(violations))
        origin: TaskOrigin = "mdph" if source == "mdph" else "other-esms"
        if typing == "text":
            task = _typed_by_text(task)
        tasks.append(ctx.state.add_task(origin, eg, decision.id_nat_decision, task))
    return JSONResponse({"tasks": [_task_summary(t) for t in tasks]}, status_code=201)


def _typed_by_text(task: dict[str, Any]) -> dict[str, Any]:
    """The Task with each input typed by ``type.text`` only (the legacy typing ViaTrajectoire may still send)."""
    inputs = []
    for item in task.get("input", []):
        code = next((c.get("code") for c in item.get("type", {}).get("coding", [])), None)
        inputs.append({**item, "type": {"text": str(code)}})
    return {**task, "input": inputs}


async def tag_reprise(request: Request) -> Response:
    """``POST /_admin/decisions/{idNat}/reprise``: a decision studied in ViaTrajectoire before the interoperability.

    The establishment's statuses entered in ViaTrajectoire's screens become Tasks it sees in flux 5 (with
    its own idNat_Struct), and the decision is published again (an update: it appears in flux 1).
    """
    ctx = _ctx(request)
    body = await _json(request)
    id_nat = request.path_params["id_nat"]
    with ctx.state.lock:
        decision = ctx.state.decisions.get(id_nat)
    if decision is None:
        raise AdminError(404, f"unknown idNat_Decision {id_nat!r}")
    eg = str(body.get("finess_eg") or "")
    if eg not in decision.notified_to:
        raise AdminError(422, f"decision {id_nat} is not notified to {eg!r}")
    statuses = body.get("statuses")
    if not isinstance(statuses, list) or not statuses or not all(isinstance(s, dict) for s in statuses):
        raise AdminError(400, "'statuses' must be a non-empty list of {statut_esms, motif_esms, date_statut_esms}")
    est = ctx.state.establishment(eg)
    tasks = []
    for entry in statuses:
        statut = _with_display(ctx, _pair(entry, "statut_esms"), sdo.TRE_R357)
        if statut is None:
            raise AdminError(400, "each status needs 'statut_esms'")
        task = esms_task(
            id_nat_struct="1" + eg, nom_esms=est.name if est else eg, id_decision=decision.id_decision,
            id_nat_decision=decision.id_nat_decision, statut_esms=statut,
            motif_esms=_with_display(ctx, _pair(entry, "motif_esms"), sdo.TRE_R358),
            date_statut_esms=_date(entry, "date_statut_esms") or ctx.state.tick().date())
        violations = conformance.check_esms_task(task, terminology=ctx.terminology.terminology())
        if conformance.has_errors(violations):
            raise AdminError(422, "the status would not be a conformant ESMSTask",
                             conformance.to_operation_outcome(violations))
        tasks.append(ctx.state.add_task("vt-screen", eg, decision.id_nat_decision, task))
    stored = ctx.state.update_decision(id_nat)
    return JSONResponse({**_decision_summary(stored), "tasks": [_task_summary(t) for t in tasks]}, status_code=201)


async def received(request: Request) -> Response:
    """``GET /_admin/received?since=N``."""
    ctx = _ctx(request)
    raw = request.query_params.get("since", "0")
    if not raw.isdigit():
        raise AdminError(400, "'since' must be a non-negative integer")
    items = ctx.state.received_since(int(raw))
    return JSONResponse({"count": len(items), "requests": [r.as_dict() for r in items]})


async def faults(request: Request) -> Response:
    """``GET`` lists, ``POST`` arms, ``DELETE`` clears the faults."""
    ctx = _ctx(request)
    if request.method == "POST":
        try:
            rule = ctx.faults.add(await _json(request))
        except ValueError as exc:
            raise AdminError(400, str(exc)) from exc
        return JSONResponse(rule.as_dict(), status_code=201)
    if request.method == "DELETE":
        ctx.faults.clear()
    return JSONResponse({"faults": [r.as_dict() for r in ctx.faults.rules()]})


async def expire_tokens(request: Request) -> Response:
    """``POST /_admin/tokens/expire``."""
    return JSONResponse({"expired": _ctx(request).tokens.expire_all()})


async def token_policy(request: Request) -> Response:
    """``GET`` shows, ``PUT`` sets what the token endpoint requires (client authentication, scope)."""
    ctx = _ctx(request)
    if request.method == "PUT":
        body = await _json(request)
        client_auth = body.get("client_auth", "any")
        scope = body.get("scope")
        if client_auth not in ("any", "basic", "form"):
            raise AdminError(400, "'client_auth' must be 'any', 'basic' or 'form'")
        if scope is not None and (not isinstance(scope, str) or not scope.strip() or " " in scope.strip()):
            raise AdminError(400, "'scope' must be one scope token, or null")
        ctx.token_policy = {"client_auth": str(client_auth), "scope": scope.strip() if scope else None}
    return JSONResponse(ctx.token_policy)


async def reset(request: Request) -> Response:
    """``POST /_admin/reset``."""
    ctx = _ctx(request)
    ctx.reset()
    return JSONResponse({"decision_count": len(ctx.state.decisions)})


async def change_valueset(request: Request) -> Response:
    """``POST /_admin/terminology/valuesets``: new version of a JDV, codes added/removed."""
    ctx = _ctx(request)
    body = await _json(request)
    url = body.get("url")
    add, remove = body.get("add", []), body.get("remove", [])
    if not isinstance(url, str) or not isinstance(add, list) or not isinstance(remove, list):
        raise AdminError(400, "expected {'url': <ValueSet canonical>, 'add': [...], 'remove': [...]}")
    version = body.get("version")
    try:
        vs = ctx.terminology.change_valueset(url, add=add, remove=remove,
                                             version=str(version) if version else None)
    except KeyError as exc:
        raise AdminError(404, f"unknown ValueSet {url!r}") from exc
    except ValueError as exc:
        raise AdminError(400, str(exc)) from exc
    return JSONResponse({"url": vs["url"], "version": vs.get("version"),
                         "codes": len(TerminologyState.active_concepts(vs))})


async def change_conceptmap(request: Request) -> Response:
    """``POST /_admin/terminology/conceptmaps``: new version of ASS_A32, (status, motif) pairs added/removed."""
    ctx = _ctx(request)
    body = await _json(request)
    url = body.get("url")
    add, remove = body.get("add", []), body.get("remove", [])
    if not isinstance(url, str) or not isinstance(add, list) or not isinstance(remove, list) or not all(
            isinstance(e, dict) for e in [*add, *remove]):
        raise AdminError(400, "expected {'url': <ConceptMap canonical>, 'add': [{'source', 'target'}], "
                              "'remove': [...]}")
    version = body.get("version")
    try:
        cm = ctx.terminology.change_conceptmap(url, add=[{k: str(v) for k, v in e.items()} for e in add],
                                               remove=[{k: str(v) for k, v in e.items()} for e in remove],
                                               version=str(version) if version else None)
    except KeyError as exc:
        raise AdminError(404, f"unknown ConceptMap {url!r}") from exc
    except ValueError as exc:
        raise AdminError(400, str(exc)) from exc
    pairs = sum(len(e.get("target", [])) for g in cm.get("group", []) for e in g.get("element", []))
    return JSONResponse({"url": cm["url"], "version": cm.get("version"), "pairs": pairs})


# -- terminology FHIR endpoint ---------------------------------------------------------------------


def _fhir(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode("utf-8"), status_code=status,
                    media_type=f"{FHIR_JSON};charset=utf-8")


def _term_base(ctx: SimulatorContext) -> str:
    return f"{ctx.admin_url}/terminology/fhir"


async def term_search(request: Request) -> Response:
    """``GET ValueSet|CodeSystem|ConceptMap?url=``: a searchset with the current resource."""
    ctx = _ctx(request)
    kind = request.path_params["kind"]
    if kind not in ("ValueSet", "CodeSystem", "ConceptMap"):
        return _fhir(operation_outcome("not-supported", f"{kind} is not served here"), 404)
    url = request.query_params.get("url")
    found = [r for r in ctx.terminology.resources()
             if r.get("resourceType") == kind and (url is None or r.get("url") == url)]
    version = request.query_params.get("version")
    if version:
        found = [r for r in found if r.get("version") == version]
    bundle = searchset(found, profile="http://hl7.org/fhir/StructureDefinition/Bundle", base_url=_term_base(ctx),
                       total=len(found), self_url=str(request.url))
    bundle.pop("meta")
    return _fhir(bundle)


async def term_expand(request: Request) -> Response:
    """``GET ValueSet/$expand?url=&count=&offset=[&valueSetVersion=]``."""
    ctx = _ctx(request)
    url = request.query_params.get("url")
    if not url:
        return _fhir(operation_outcome("required", "url is required"), 400)
    vs = ctx.terminology.find("ValueSet", url)
    if vs is None:
        return _fhir(operation_outcome("not-found", f"unknown ValueSet {url}"), 404)
    wanted = request.query_params.get("valueSetVersion")
    if wanted and wanted != vs.get("version"):
        return _fhir(operation_outcome("not-found", f"ValueSet {url} version {wanted} is not available "
                                                    f"(current: {vs.get('version')})"), 404)
    try:
        offset = int(request.query_params.get("offset", "0"))
        count = int(request.query_params.get("count", "1000"))
    except ValueError:
        return _fhir(operation_outcome("invalid", "count and offset must be integers"), 400)
    concepts = TerminologyState.active_concepts(vs)
    page = concepts[max(offset, 0):max(offset, 0) + max(count, 0)]
    expanded = {k: v for k, v in vs.items() if k != "compose"}
    expanded["expansion"] = {"identifier": f"urn:uuid:{ctx.settings.seed:08d}-0000-4000-8000-000000000000",
                             "timestamp": format_instant(ctx.state.clock()), "total": len(concepts),
                             "offset": offset, "contains": page}
    return _fhir(expanded)


async def term_metadata(request: Request) -> Response:
    """``GET metadata`` of the terminology endpoint."""
    return _fhir({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                  "date": format_instant(_ctx(request).started_at), "fhirVersion": "4.0.1", "format": ["json"],
                  "rest": [{"mode": "server", "resource": [
                      {"type": t, "interaction": [{"code": "search-type"}]}
                      for t in ("CodeSystem", "ConceptMap", "ValueSet")]}]})


async def _admin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminError)
    body: dict[str, Any] = {"error": str(exc)}
    if exc.outcome:
        body["outcome"] = exc.outcome
    return JSONResponse(body, status_code=exc.status)


def build_admin_app(ctx: SimulatorContext) -> ASGIApp:
    """The ASGI app of the admin port."""
    term = "/_admin/terminology/fhir"
    app = Starlette(routes=[
        Route("/_admin/info", info, methods=["GET"]),
        Route("/_admin/decisions", list_decisions, methods=["GET"]),
        Route("/_admin/decisions", create_decisions, methods=["POST"]),
        Route("/_admin/decisions/{id_nat}/update", update_decision, methods=["POST"]),
        Route("/_admin/decisions/{id_nat}/document", replace_document, methods=["PUT"]),
        Route("/_admin/decisions/{id_nat}/reprise", tag_reprise, methods=["POST"]),
        Route("/_admin/events", create_event, methods=["POST"]),
        Route("/_admin/received", received, methods=["GET"]),
        Route("/_admin/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_admin/tokens/expire", expire_tokens, methods=["POST"]),
        Route("/_admin/token-policy", token_policy, methods=["GET", "PUT"]),
        Route("/_admin/reset", reset, methods=["POST"]),
        Route("/_admin/terminology/valuesets", change_valueset, methods=["POST"]),
        Route("/_admin/terminology/conceptmaps", change_conceptmap, methods=["POST"]),
        Route(f"{term}/metadata", term_metadata, methods=["GET"]),
        Route(f"{term}/ValueSet/$expand", term_expand, methods=["GET"]),
        Route(f"{term}/{{kind}}", term_search, methods=["GET"]),
    ], exception_handlers={AdminError: _admin_error})
    app.state.ctx = ctx
    return app
