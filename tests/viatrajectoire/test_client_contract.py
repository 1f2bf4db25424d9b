"""Contract tests: the client against the real ViaTrajectoire simulator, over mTLS and OAuth2.

The simulator (vtdui.simulator) runs in-process on free loopback ports with its own PKI; the client is
configured from the ``vtdui.toml`` the simulator writes, exactly as a user would. Faults (429, 503,
expired tokens) are armed through the simulator's admin port. Only the sleep between attempts is
injected, so that retries take no wall time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui import sdo
from vtdui.config import Config, Establishment, LegalEntity, RetrySettings, load_config
from vtdui.errors import AuthError, RemoteError, RetriableError
from vtdui.simulator import server as simulator_server
from vtdui.viatrajectoire import ConsentRequiredError, DeliveryUncertainError, Exchange, ViaTrajectoireClient

pytestmark = pytest.mark.simulator



SINCE = datetime.now(UTC) - timedelta(days=29)
FAST = RetrySettings(attempts=3, base_delay=0.5, max_delay=30.0)


class Sim:
    """A running simulator with what the tests need to drive it."""

    def __init__(self, running: Any) -> None:
        self.running = running
        self.admin = httpx.Client(base_url=running.admin_url.rstrip("/") + "/", timeout=30.0)
        self.info: dict[str, Any] = self.admin.get("info").raise_for_status().json()
        self.config: Config = load_config(Path(self.info["config_path"]))

    def entity(self, index: int = 0) -> LegalEntity:
        return self.config.legal_entities[index]

    def decisions(self) -> list[dict[str, Any]]:
        return list(self.admin.get("decisions").raise_for_status().json()["decisions"])

    def decision_for(self, finess_eg: str) -> dict[str, Any]:
        return next(d for d in self.decisions() if finess_eg in d["notified_to"])

    def fault(self, **spec: Any) -> None:
        self.admin.post("faults", json=spec).raise_for_status()

    def received(self) -> list[dict[str, Any]]:
        return list(self.admin.get("received").raise_for_status().json()["requests"])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    running = simulator_server.start_simulator(tmp_path_factory.mktemp("vt-sim"), seed=11, n_decisions=12,
                                               port=0, admin_port=0, page_size=2)
    try:
        handle = Sim(running)
        yield handle
        handle.admin.close()
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _clear_faults(sim: Sim) -> Iterator[None]:
    yield
    sim.admin.delete("faults").raise_for_status()


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.exchanges: list[Exchange] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def client_for(sim: Sim, rec: Recorder, entity: LegalEntity | None = None,
               retry: RetrySettings = FAST) -> ViaTrajectoireClient:
    return ViaTrajectoireClient(sim.config.viatrajectoire, entity or sim.entity(), retry, sleep=rec.sleep,
                                rand=lambda: 1.0, on_exchange=rec.exchanges.append)


def eg_of(entity: LegalEntity) -> str:
    return entity.establishments[0].finess_eg


# -- authentication -----------------------------------------------------------------------------------

def test_token_over_mtls_with_pem_files(sim: Sim, rec: Recorder) -> None:
    pem_only = replace(sim.entity(), p12_file=None, p12_password=None)
    assert pem_only.cert_file is not None
    with client_for(sim, rec, pem_only) as vt:
        assert vt.auth.token()
        assert list(vt.search_statuses(eg_of(pem_only), SINCE)) is not None
    token_trace = rec.exchanges[0]
    assert token_trace.kind == "token" and token_trace.status == 200
    assert b"***" in token_trace.response_body


def test_token_over_mtls_with_pkcs12(sim: Sim, rec: Recorder) -> None:
    p12_only = replace(sim.entity(), cert_file=None, key_file=None)
    assert p12_only.p12_file is not None and p12_only.p12_password
    with client_for(sim, rec, p12_only) as vt:
        hits = list(vt.search_decisions(eg_of(p12_only), SINCE))
    assert hits, "the seeded dataset notifies decisions to the first establishment"


def test_wrong_client_secret_is_an_auth_error(sim: Sim, rec: Recorder) -> None:
    settings = replace(sim.config.viatrajectoire, client_secret="not-the-secret")
    with ViaTrajectoireClient(settings, sim.entity(), FAST, sleep=rec.sleep) as vt, \
            pytest.raises(AuthError, match="invalid_client"):
        vt.read_document(eg_of(sim.entity()), "whatever")
    assert rec.sleeps == []


def test_certificate_from_an_unknown_ca_is_refused(sim: Sim, rec: Recorder) -> None:
    stranger = sim.info["unknown_client"]
    entity = replace(sim.entity(), cert_file=Path(stranger["cert_file"]), key_file=Path(stranger["key_file"]),
                     p12_file=None, p12_password=None)
    # The simulator (asyncio TLS) drops the connection without a TLS alert, so the client cannot tell a
    # refusal from a network drop: it retries, then says what the silence usually means.
    with client_for(sim, rec, entity) as vt, pytest.raises(RetriableError, match="refuses the client certificate"):
        vt.read_document(eg_of(entity), "whatever")
    assert len(rec.sleeps) == FAST.attempts - 1


def test_struct_idnat_outside_the_token_is_an_auth_error(sim: Sim, rec: Recorder) -> None:
    other_eg = sim.entity(1).establishments[0]
    mine = sim.entity(0)
    pretending = replace(mine, establishments=(*mine.establishments, Establishment(other_eg.finess_eg, "not mine")))
    with client_for(sim, rec, pretending) as vt, pytest.raises(AuthError) as info:
        list(vt.search_decisions(other_eg.finess_eg, SINCE))
    assert info.value.status == 403
    assert rec.sleeps == []


def test_expired_token_is_renewed_once_transparently(sim: Sim, rec: Recorder) -> None:
    eg = eg_of(sim.entity())
    with client_for(sim, rec) as vt:
        list(vt.search_statuses(eg, SINCE))
        assert vt.auth.fetch_count == 1
        sim.admin.post("tokens/expire").raise_for_status()
        list(vt.search_statuses(eg, SINCE))
        assert vt.auth.fetch_count == 2
    statuses = [e.status for e in rec.exchanges if e.kind == "fhir"]
    assert statuses == [200, 401, 200]
    assert rec.sleeps == []


# -- flux 1 -------------------------------------------------------------------------------------------

def test_flux_1_search_pages_then_read(sim: Sim, rec: Recorder) -> None:
    eg = eg_of(sim.entity())
    sim.admin.post("decisions", json={"count": 3, "notified_to": [eg]}).raise_for_status()
    expected = {d["docref_id"] for d in sim.decisions() if eg in d["notified_to"]}
    assert len(expected) >= 5  # several pages of 2
    paris = timezone(timedelta(hours=2))
    with client_for(sim, rec) as vt:
        results = vt.search_decisions(eg, SINCE.astimezone(paris))
        hits = list(results)
        assert {h.id for h in hits} == expected
        assert len(hits) == len(expected)  # no duplicates
        assert results.pages == (len(expected) + 1) // 2
        assert results.server_time is not None and results.server_time.tzinfo is not None
        assert vt.last_server_time is not None
        document = vt.read_document(eg, hits[0].id)
    assert document["id"] == hits[0].id
    assert document["type"]["coding"][0]["code"] == sdo.TYPE_DECISION
    cda = base64.b64decode(document["content"][0]["attachment"]["data"])
    assert b"ClinicalDocument" in cda
    first = rec.exchanges[1]
    assert "_lastUpdated=gt" in first.url and "%2B02:00" in first.url and "+" not in first.url
    assert first.request_headers["struct_idnat"] == "1" + eg
    assert first.request_headers["authorization"] == "***"


def test_flux_1_search_with_nothing_new(sim: Sim, rec: Recorder) -> None:
    with client_for(sim, rec) as vt:
        assert list(vt.search_decisions(eg_of(sim.entity()), datetime.now(UTC) + timedelta(hours=1))) == []


def test_flux_1_read_of_a_decision_not_notified_is_a_remote_error(sim: Sim, rec: Recorder) -> None:
    with client_for(sim, rec) as vt, pytest.raises(RemoteError) as info:
        vt.read_document(eg_of(sim.entity()), "no-such-document")
    assert info.value.status == 404
    assert info.value.outcome is not None and info.value.outcome["resourceType"] == "OperationOutcome"
    assert "no-such-document" in str(info.value)


# -- flux 2 and 3 -------------------------------------------------------------------------------------

def consent(id_nat_struct: str, id_nat_decision: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "meta": {"profile": [sdo.PROFILE_CONSENT], "source": id_nat_struct},
        "status": "active",
        "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
        "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
        "dateTime": date.today().isoformat(),
        "policyRule": {"coding": [{"system": sdo.ACT_CODE_SYSTEM, "code": sdo.OPTIN}]},
        "provision": {"data": [{"meaning": "related",
                                "reference": {"identifier": {"use": "official", "value": id_nat_decision}}}]},
    }


def test_flux_2_then_3(sim: Sim, rec: Recorder) -> None:
    eg = eg_of(sim.entity())
    decision = sim.decision_for(eg)
    id_nat = decision["id_nat_decision"]
    with client_for(sim, rec) as vt:
        assert vt.search_evaluation(eg, id_nat) == []  # simulator default: empty searchset without consent
        created = vt.post_consent(eg, consent("1" + eg, id_nat))
        assert created.status == 201 and created.id and created.location
        assert created.resource["resourceType"] == "Consent"
        evaluations = vt.search_evaluation(eg, id_nat)
    assert len(evaluations) == 1
    assert evaluations[0]["type"]["coding"][0]["code"] == sdo.TYPE_EVALUATION
    assert b"ClinicalDocument" in base64.b64decode(evaluations[0]["content"][0]["attachment"]["data"])


def test_flux_2_refused_consent_surfaces_the_operation_outcome(sim: Sim, rec: Recorder) -> None:
    eg = eg_of(sim.entity())
    bad = consent("1" + eg, "unknown-decision")
    del bad["policyRule"]
    with client_for(sim, rec) as vt, pytest.raises(RemoteError) as info:
        vt.post_consent(eg, bad)
    assert info.value.status in {400, 422}
    assert info.value.issues()
    assert info.value.issues()[0] in str(info.value)
    assert rec.sleeps == []


def test_flux_3_without_consent_as_403(tmp_path: Path, rec: Recorder) -> None:
    running = simulator_server.start_simulator(tmp_path, seed=5, n_decisions=3, port=0, admin_port=0,
                                               evaluation_without_consent="403")
    try:
        other = Sim(running)
        eg = eg_of(other.entity())
        id_nat = other.decision_for(eg)["id_nat_decision"]
        with client_for(other, rec) as vt, pytest.raises(ConsentRequiredError, match="consent") as info:
            vt.search_evaluation(eg, id_nat)
        assert info.value.status == 403
        other.admin.close()
    finally:
        running.stop()


# -- flux 4 -------------------------------------------------------------------------------------------

def _input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": sdo.input_type(code), **value}


def task(eg: str, name: str, decision: dict[str, Any], *, status: str = "completed") -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "meta": {"profile": [sdo.PROFILE_TASK], "lastUpdated": datetime.now(UTC).isoformat(timespec="seconds")},
        "status": status,
        "intent": "plan",
        "input": [
            _input(sdo.ID_NAT_STRUCT, valueIdentifier={"value": "1" + eg}),
            _input(sdo.NOM_ESMS, valueString=name),
            _input(sdo.ID_DECISION, valueIdentifier={"value": decision["id_decision"]}),
            _input(sdo.ID_NAT_DECISION, valueIdentifier={"value": decision["id_nat_decision"]}),
            _input(sdo.STATUT_ESMS, valueCodeableConcept={"coding": [
                {"system": sdo.TRE_R357, "code": "41", "display": "Contact effectué"}]}),
            _input(sdo.MOTIF_ESMS, valueCodeableConcept={"coding": [
                {"system": sdo.TRE_R358, "code": "152", "display": "L'usager a visité l'ESMS"}]}),
            _input(sdo.DATE_STATUT_ESMS, valueDate=date.today().isoformat()),
        ],
    }


def test_flux_4_accepted(sim: Sim, rec: Recorder) -> None:
    establishment = sim.entity().establishments[0]
    decision = sim.decision_for(establishment.finess_eg)
    with client_for(sim, rec) as vt:
        created = vt.post_task(establishment.finess_eg, task(establishment.finess_eg, establishment.name, decision))
    assert created.status == 201
    assert created.id and created.version_id == "1"
    assert created.location and f"Task/{created.id}" in created.location
    assert created.resource["id"] == created.id
    posted = [r for r in sim.received() if r["method"] == "POST" and r["path"].endswith("/Task")]
    assert posted[-1]["struct_idnat"] == "1" + establishment.finess_eg


def test_flux_4_refused_surfaces_the_operation_outcome(sim: Sim, rec: Recorder) -> None:
    establishment = sim.entity().establishments[0]
    decision = sim.decision_for(establishment.finess_eg)
    bad = task(establishment.finess_eg, establishment.name, decision, status="in-progress")
    with client_for(sim, rec) as vt, pytest.raises(RemoteError) as info:
        vt.post_task(establishment.finess_eg, bad)
    error = info.value
    assert not isinstance(error, AuthError)
    assert error.status == 422
    assert error.outcome is not None and error.outcome["resourceType"] == "OperationOutcome"
    assert error.issues() and all(text in str(error) for text in error.issues())
    assert any("status" in text.lower() or "completed" in text for text in error.issues())
    assert rec.sleeps == []


# -- flux 5 -------------------------------------------------------------------------------------------

def test_flux_5_statuses_of_another_establishment(sim: Sim, rec: Recorder) -> None:
    eg = eg_of(sim.entity())
    decision = sim.decision_for(eg)
    other_eg = sim.entity(1).establishments[0].finess_eg
    start = datetime.now(UTC) - timedelta(seconds=5)
    made = []
    for code in ("43", "47", "43"):
        answer = sim.admin.post("events", json={"source": "esms", "finess_eg": other_eg,
                                                "id_nat_decision": decision["id_nat_decision"],
                                                "statut_esms": code})
        answer.raise_for_status()
        made += [t["id"] for t in answer.json()["tasks"]]
    with client_for(sim, rec) as vt:
        results = vt.search_statuses(eg, start)
        tasks = list(results)
    ids = [t["id"] for t in tasks]
    assert set(made) <= set(ids)
    assert len(ids) == len(set(ids))
    assert results.pages >= 2  # page_size=2 and at least three new Tasks
    assert all(t["resourceType"] == "Task" for t in tasks)


# -- passing faults -----------------------------------------------------------------------------------

def test_429_with_retry_after_is_waited_then_succeeds(sim: Sim, rec: Recorder) -> None:
    sim.fault(route="GET /fhir/Task*", status=429, retry_after=7, count=1)
    with client_for(sim, rec) as vt:
        list(vt.search_statuses(eg_of(sim.entity()), SINCE))
    assert rec.sleeps == [7.0]  # the server's Retry-After, above our own 0.5 s backoff
    assert [e.status for e in rec.exchanges if e.kind == "fhir"][:2] == [429, 200]


def test_503_is_retried_with_backoff_then_succeeds(sim: Sim, rec: Recorder) -> None:
    sim.fault(route="GET /fhir/DocumentReference*", status=503, count=2)
    with client_for(sim, rec) as vt:
        hits = list(vt.search_decisions(eg_of(sim.entity()), SINCE))
    assert hits
    assert rec.sleeps == [0.5, 1.0]


def test_token_endpoint_503_is_retried(sim: Sim, rec: Recorder) -> None:
    sim.fault(route="POST /oauth/token", status=503, count=1)
    with client_for(sim, rec) as vt:
        list(vt.search_statuses(eg_of(sim.entity()), SINCE))
        assert vt.auth.fetch_count == 2
    assert rec.sleeps == [0.5]


def test_retries_exhausted_is_a_retriable_error(sim: Sim, rec: Recorder) -> None:
    sim.fault(route="GET /fhir/DocumentReference*", status=503, retry_after=2, count=FAST.attempts)
    with client_for(sim, rec) as vt, pytest.raises(RetriableError, match="gave up after 3 attempts") as info:
        list(vt.search_decisions(eg_of(sim.entity()), SINCE))
    assert info.value.status == 503 and info.value.retry_after == 2.0
    assert rec.sleeps == [2.0, 2.0]


def test_post_429_is_resent_because_the_server_did_not_apply_it(sim: Sim, rec: Recorder) -> None:
    establishment = sim.entity().establishments[0]
    decision = sim.decision_for(establishment.finess_eg)
    sim.fault(route="POST /fhir/Task", status=429, retry_after=1, count=1)
    with client_for(sim, rec) as vt:
        created = vt.post_task(establishment.finess_eg, task(establishment.finess_eg, establishment.name, decision))
    assert created.status == 201
    assert rec.sleeps == [1.0]


def test_dropped_connection_on_a_search_is_retried(sim: Sim, rec: Recorder) -> None:
    sim.fault(route="GET /fhir/Task*", action="drop", count=1)
    with client_for(sim, rec) as vt:
        list(vt.search_statuses(eg_of(sim.entity()), SINCE))
    assert len(rec.sleeps) == 1
    assert [e.status for e in rec.exchanges if e.kind == "fhir"][:2] == [None, 200]


def test_search_timing_out_is_retried(sim: Sim, rec: Recorder) -> None:
    impatient = replace(sim.config.viatrajectoire, timeout=0.3)
    sim.fault(route="GET /fhir/Task*", action="delay", delay=1.5, count=1)
    with ViaTrajectoireClient(impatient, sim.entity(), FAST, sleep=rec.sleep, rand=lambda: 1.0,
                              on_exchange=rec.exchanges.append) as vt:
        list(vt.search_statuses(eg_of(sim.entity()), SINCE))
    fhir = [e for e in rec.exchanges if e.kind == "fhir"]
    assert fhir[0].status is None and fhir[0].error is not None and "Timeout" in fhir[0].error
    assert fhir[1].status == 200
    assert rec.sleeps == [0.5]


def test_post_timing_out_is_reported_uncertain_and_not_resent(sim: Sim, rec: Recorder) -> None:
    establishment = sim.entity().establishments[0]
    decision = sim.decision_for(establishment.finess_eg)
    impatient = replace(sim.config.viatrajectoire, timeout=0.3)
    sim.fault(route="POST /fhir/Task", action="delay", delay=1.5, count=1)
    with ViaTrajectoireClient(impatient, sim.entity(), FAST, sleep=rec.sleep,
                              on_exchange=rec.exchanges.append) as vt, \
            pytest.raises(DeliveryUncertainError, match="may have been applied"):
        vt.post_task(establishment.finess_eg, task(establishment.finess_eg, establishment.name, decision))
    assert [e.method for e in rec.exchanges if e.kind == "fhir"] == ["POST"]
    assert rec.sleeps == []


# -- issue 12: what the real service may do --------------------------------------------------------------------


def test_403_on_a_read_is_refused_for_that_document_not_an_auth_error(sim: Sim, rec: Recorder) -> None:
    from vtdui.viatrajectoire.client import ReadRefusedError

    entity = sim.entity()
    decision = sim.decision_for(eg_of(entity))
    sim.fault(route=f"GET /fhir/DocumentReference/{decision['docref_id']}", status=403)
    with client_for(sim, rec) as vt:
        with pytest.raises(ReadRefusedError) as caught:
            vt.read_document(eg_of(entity), decision["docref_id"])
        assert not isinstance(caught.value, AuthError) and caught.value.status == 403
        assert vt.read_document(eg_of(entity), decision["docref_id"])["id"] == decision["docref_id"]


def test_answers_over_the_cap_are_refused_declared_or_streamed(sim: Sim, rec: Recorder) -> None:
    from vtdui.viatrajectoire._transport import ResponseTooLargeError

    entity = sim.entity()
    decision = sim.decision_for(eg_of(entity))
    settings = replace(sim.config.viatrajectoire, max_response_bytes=1024 * 1024)
    sim.fault(route=f"GET /fhir/DocumentReference/{decision['docref_id']}", action="body",
              body='{"resourceType": "DocumentReference", "id": "' + "x" * (2 * 1024 * 1024) + '"}')
    with ViaTrajectoireClient(settings, entity, FAST, sleep=rec.sleep) as vt, \
            pytest.raises(ResponseTooLargeError, match="1048576-byte cap"):
        vt.read_document(eg_of(entity), decision["docref_id"])

    def chunked(request: httpx.Request) -> httpx.Response:  # no Content-Length: the cap applies while reading
        if request.url.path.endswith("/oauth/token"):
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 600})
        return httpx.Response(200, stream=httpx.ByteStream(b"{" + b" " * (3 * 1024 * 1024) + b"}"),
                              headers={"Content-Type": "application/fhir+json"})

    with ViaTrajectoireClient(settings, entity, FAST, sleep=rec.sleep, transport=httpx.MockTransport(chunked)) as vt, \
            pytest.raises(ResponseTooLargeError, match="reading stopped"):
        vt.read_document(eg_of(entity), "doc-1")


def test_token_request_with_form_credentials_scope_and_no_secret_in_the_trace(sim: Sim, rec: Recorder) -> None:
    sim.admin.put("token-policy", json={"client_auth": "form", "scope": "sdo.esms"}).raise_for_status()
    try:
        entity = sim.entity()
        with client_for(sim, rec) as vt, pytest.raises(AuthError, match="token_auth"):
            vt.read_document(eg_of(entity), "whatever")
        settings = replace(sim.config.viatrajectoire, token_auth="form", token_scope="sdo.esms")
        with ViaTrajectoireClient(settings, entity, FAST, sleep=rec.sleep, on_exchange=rec.exchanges.append) as vt:
            assert vt.auth.token()
        token_request = [e for e in rec.exchanges if e.kind == "token"][-1]
        body = token_request.request_body or b""
        assert b"client_id=" in body and b"scope=sdo.esms" in body
        assert sim.config.viatrajectoire.client_secret.encode() not in body and b"client_secret=%2A%2A%2A" in body
        assert "authorization" not in {k.lower() for k in token_request.request_headers}
    finally:
        sim.admin.put("token-policy", json={"client_auth": "any", "scope": None}).raise_for_status()


def test_identifier_search_escapes_the_fhir_special_characters() -> None:
    from vtdui.viatrajectoire.client import _token

    assert _token("VTS-123") == "VTS-123"
    assert _token("A|B,C$D\\E") == "A%5C%7CB%5C%2CC%5C%24D%5C%5CE"
