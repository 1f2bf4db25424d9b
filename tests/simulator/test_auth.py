"""Authentication contract: mTLS with the legal entity's certificate, OAuth2 client credentials, struct_idnat."""

from __future__ import annotations

import httpx
import pytest
from sim_helpers import Dui, admin, mtls_context

from vtdui.simulator.server import RunningSimulator

DECISION_SEARCH = {"type": "57830-2", "_lastUpdated": "gt2020-01-01T00:00:00.000+02:00", "_elements": "id"}
TLS_FAILURES = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)


def _outcome(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return body


def test_token_lists_the_establishments_of_the_certificate_legal_entity(dui: Dui, other_dui: Dui) -> None:
    for client in (dui, other_dui):
        response = client.fetch_token()
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        # the server read the certificate of *this* connection (subject OU = FINESS EJ)
        assert body["finess_ej"] == client.ej["finess_ej"]
        assert body["finess_eg"] == client.egs
    assert dui.fetch_token().json()["access_token"] != dui.fetch_token().json()["access_token"]


def test_token_with_form_credentials(dui: Dui) -> None:
    response = dui.http.post(dui.sim.token_url, data={
        "grant_type": "client_credentials", "client_id": dui.info["client_id"],
        "client_secret": dui.info["client_secret"]})
    assert response.status_code == 200


@pytest.mark.parametrize("secret", ["wrong", ""])
def test_bad_secret_is_401_invalid_client(dui: Dui, secret: str) -> None:
    response = dui.http.post(dui.sim.token_url, data={"grant_type": "client_credentials"},
                             auth=(dui.info["client_id"], secret))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "Basic" in response.headers["www-authenticate"]


def test_wrong_grant_type_and_missing_credentials(dui: Dui) -> None:
    response = dui.http.post(dui.sim.token_url, data={"grant_type": "password"},
                             auth=(dui.info["client_id"], dui.info["client_secret"]))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    response = dui.http.post(dui.sim.token_url, data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    response = dui.http.post(dui.sim.token_url, json={"grant_type": "client_credentials"},
                             auth=(dui.info["client_id"], dui.info["client_secret"]))
    assert response.status_code == 400


def test_no_client_certificate_fails_the_tls_handshake(simulator: RunningSimulator) -> None:
    info = simulator.info
    with httpx.Client(verify=mtls_context(info["ca_cert"])) as client, pytest.raises(TLS_FAILURES):
        client.post(simulator.token_url, data={"grant_type": "client_credentials"},
                    auth=(info["client_id"], info["client_secret"]))


def test_certificate_of_an_unknown_ca_fails_the_tls_handshake(simulator: RunningSimulator) -> None:
    info = simulator.info
    unknown = info["unknown_client"]
    ctx = mtls_context(info["ca_cert"], unknown["cert_file"], unknown["key_file"])
    with httpx.Client(verify=ctx) as client, pytest.raises(TLS_FAILURES):
        client.get(f"{simulator.fhir_base_url}/metadata")


def test_metadata_needs_only_the_certificate(dui: Dui) -> None:
    response = dui.http.get(f"{dui.sim.fhir_base_url}/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["instantiates"] == ["https://interop.esante.gouv.fr/ig/fhir/sdo/CapabilityStatement/gestionnaire-sdo"]
    types = {r["type"]: [i["code"] for i in r["interaction"]] for r in body["rest"][0]["resource"]}
    assert types == {"Consent": ["create"], "DocumentReference": ["search-type", "read"],
                     "Task": ["create", "search-type", "read"]}


def test_missing_or_malformed_bearer_is_401_with_challenge(dui: Dui) -> None:
    eg = dui.egs[0]
    url = f"{dui.sim.fhir_base_url}/DocumentReference"
    for headers in ({"struct_idnat": "1" + eg},
                    {"struct_idnat": "1" + eg, "Authorization": "Basic abc"},
                    {"struct_idnat": "1" + eg, "Authorization": "Bearer not-a-token"}):
        response = dui.http.get(url, params=DECISION_SEARCH, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        _outcome(response)


def test_expired_token_is_401_then_a_new_token_works(simulator: RunningSimulator) -> None:
    client = Dui(simulator, 0)
    eg = client.egs[0]
    assert client.get("DocumentReference", eg, DECISION_SEARCH).status_code == 200
    assert admin(simulator, "POST", "tokens/expire").json()["expired"] >= 1
    response = client.get("DocumentReference", eg, DECISION_SEARCH)
    assert response.status_code == 401
    assert "expired" in response.json()["issue"][0]["diagnostics"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    client.token(renew=True)
    assert client.get("DocumentReference", eg, DECISION_SEARCH).status_code == 200
    client.close()


def test_token_of_another_legal_entity_is_refused_on_this_certificate(dui: Dui, other_dui: Dui) -> None:
    foreign = other_dui.token()
    response = dui.http.get(f"{dui.sim.fhir_base_url}/DocumentReference", params=DECISION_SEARCH,
                            headers={"Authorization": f"Bearer {foreign}", "struct_idnat": "1" + other_dui.egs[0]})
    assert response.status_code == 401
    _outcome(response)


def test_struct_idnat_missing_is_400(dui: Dui) -> None:
    response = dui.http.get(f"{dui.sim.fhir_base_url}/DocumentReference", params=DECISION_SEARCH,
                            headers={"Authorization": f"Bearer {dui.token()}"})
    assert response.status_code == 400
    assert _outcome(response)["issue"][0]["code"] == "required"  # type: ignore[index]


@pytest.mark.parametrize("value", ["", "350000017", "2350000017", "1ABCDEFGHI", "13500000170"])
def test_struct_idnat_malformed_is_400(dui: Dui, value: str) -> None:
    response = dui.http.get(f"{dui.sim.fhir_base_url}/DocumentReference", params=DECISION_SEARCH,
                            headers={"Authorization": f"Bearer {dui.token()}", "struct_idnat": value})
    assert response.status_code == 400
    _outcome(response)


def test_struct_idnat_of_a_foreign_establishment_is_403(dui: Dui, other_dui: Dui) -> None:
    response = dui.get("DocumentReference", other_dui.egs[0], DECISION_SEARCH)
    assert response.status_code == 403
    assert _outcome(response)["issue"][0]["code"] == "forbidden"  # type: ignore[index]


def test_struct_idnat_header_name_is_case_insensitive(dui: Dui) -> None:
    response = dui.http.get(f"{dui.sim.fhir_base_url}/DocumentReference", params=DECISION_SEARCH,
                            headers={"Authorization": f"Bearer {dui.token()}", "Struct_IdNat": "1" + dui.egs[0]})
    assert response.status_code == 200


def test_token_lifetime_is_configurable(tmp_path: object) -> None:
    from pathlib import Path

    from vtdui.simulator.server import start_simulator

    sim = start_simulator(Path(str(tmp_path)), seed=3, n_decisions=1, port=0, admin_port=0, token_lifetime=120)
    try:
        client = Dui(sim, 0)
        assert client.fetch_token().json()["expires_in"] == 120
        client.close()
    finally:
        sim.stop()
