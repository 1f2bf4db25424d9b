"""Client behaviour on answers a real peer (the simulator) cannot easily produce: httpx.MockTransport.

Everything a real server can do is tested against the simulator in test_client_contract.py.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx
import pytest
from vt_pki import EG, entity

from vtdui.config import RetrySettings, ViaTrajectoireSettings
from vtdui.errors import AuthError, ConfigError, RemoteError, RetriableError
from vtdui.viatrajectoire import DeliveryUncertainError, Exchange, ViaTrajectoireClient

BASE = "https://vt.test/fhir"
SETTINGS = ViaTrajectoireSettings(base_url=BASE, token_url="https://vt.test/oauth/token", client_id="dui",
                                  client_secret="top-secret-value", token_renew_margin=60.0)
RETRY = RetrySettings(attempts=3, base_delay=1.0, max_delay=30.0)
SINCE = datetime(2026, 5, 10, 6, tzinfo=UTC)
TASK = {"resourceType": "Task", "status": "completed", "intent": "plan"}

Handler = Callable[[httpx.Request], httpx.Response]


class Peer:
    """A scripted ViaTrajectoire: token endpoint that counts, FHIR answers taken from a list."""

    def __init__(self, fhir: Sequence[Handler | httpx.Response] | Handler, *, token: Handler | None = None) -> None:
        self.fhir = fhir if callable(fhir) else list(fhir)
        self.token_handler = token
        self.tokens_issued = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/oauth/token":
            if self.token_handler is not None:
                return self.token_handler(request)
            self.tokens_issued += 1
            return httpx.Response(200, json={"access_token": f"tok-{self.tokens_issued}", "token_type": "Bearer",
                                             "expires_in": 3600})
        if callable(self.fhir):
            return self.fhir(request)
        answer = self.fhir.pop(0)
        return answer(request) if callable(answer) else answer

    def fhir_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/oauth/token"]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(peer: Peer, *, sleep: Sleeps | None = None, clock: Callable[[], float] | None = None,
                on_exchange: Callable[[Exchange], None] | None = None,
                retry: RetrySettings = RETRY) -> ViaTrajectoireClient:
    kwargs: dict[str, object] = {}
    if clock is not None:
        kwargs["clock"] = clock
    return ViaTrajectoireClient(SETTINGS, entity(), retry, transport=httpx.MockTransport(peer),
                                sleep=sleep if sleep is not None else Sleeps(), rand=lambda: 1.0,
                                on_exchange=on_exchange, **kwargs)  # type: ignore[arg-type]


def bundle(*ids: str, next_url: str | None = None) -> dict[str, object]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links,
            "entry": [{"resource": {"resourceType": "DocumentReference", "id": i}} for i in ids]}


# -- token endpoint oddities -----------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ({"access_token": "x", "token_type": "MAC"}, "token_type 'MAC' is not Bearer"),
    ({"token_type": "Bearer"}, "no access_token"),
    (["not", "an", "object"], "not a JSON object"),
])
def test_unusable_token_response(body: object, message: str) -> None:
    peer = Peer([], token=lambda _: httpx.Response(200, json=body))
    with make_client(peer) as client, pytest.raises(RemoteError, match=message):
        client.read_document(EG, "dr-1")
    assert peer.fhir_requests() == []


def test_token_is_renewed_before_expiry_not_on_every_call() -> None:
    now = [1000.0]
    peer = Peer(lambda _: httpx.Response(200, json={"resourceType": "DocumentReference", "id": "dr-1"}))
    with make_client(peer, clock=lambda: now[0]) as client:
        client.read_document(EG, "dr-1")
        now[0] += 3600 - 61  # still outside the 60 s renewal margin
        client.read_document(EG, "dr-1")
        assert peer.tokens_issued == 1
        now[0] += 2  # inside the margin: renewed before the server would refuse it
        client.read_document(EG, "dr-1")
        assert peer.tokens_issued == 2
    sent = [r.headers["Authorization"] for r in peer.fhir_requests()]
    assert sent == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_concurrent_callers_share_one_token_request() -> None:
    release = threading.Event()
    issued: list[int] = []

    def slow_token(_: httpx.Request) -> httpx.Response:
        issued.append(1)
        release.wait(5)
        return httpx.Response(200, json={"access_token": "shared", "token_type": "bearer", "expires_in": 600})

    peer = Peer(lambda _: httpx.Response(200, json={"resourceType": "DocumentReference", "id": "d"}),
                token=slow_token)
    with make_client(peer) as client:
        threads = [threading.Thread(target=client.read_document, args=(EG, "d")) for _ in range(8)]
        for thread in threads:
            thread.start()
        release.set()
        for thread in threads:
            thread.join(10)
    assert len(issued) == 1
    assert {r.headers["Authorization"] for r in peer.fhir_requests()} == {"Bearer shared"}
    assert len(peer.fhir_requests()) == 8


# -- FHIR answers ----------------------------------------------------------------------------------------

def test_401_even_with_a_fresh_token_is_an_auth_error_after_one_renewal() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login",
                                                                "diagnostics": "token revoked"}]}
    peer = Peer(lambda _: httpx.Response(401, json=outcome))
    with make_client(peer) as client, pytest.raises(AuthError, match="401 even with a fresh token: token revoked"):
        client.read_document(EG, "dr-1")
    assert peer.tokens_issued == 2
    assert len(peer.fhir_requests()) == 2


def test_invalid_json_is_a_remote_error() -> None:
    peer = Peer([httpx.Response(200, content=b"<html>maintenance</html>", headers={"Content-Type": "text/html"})])
    with make_client(peer) as client, pytest.raises(RemoteError, match="not valid JSON") as info:
        client.read_document(EG, "dr-1")
    assert not isinstance(info.value, AuthError)


def test_search_answer_that_is_not_a_bundle() -> None:
    peer = Peer([httpx.Response(200, json={"resourceType": "DocumentReference", "id": "x"})])
    with make_client(peer) as client, pytest.raises(RemoteError, match="expected a Bundle"):
        list(client.search_decisions(EG, SINCE))


def test_redirect_is_not_followed() -> None:
    peer = Peer([httpx.Response(302, headers={"Location": "https://elsewhere.test/"})])
    with make_client(peer) as client, pytest.raises(RemoteError, match="HTTP 302"):
        client.read_document(EG, "dr-1")
    assert len(peer.requests) == 2  # token + one FHIR call, nothing sent elsewhere


def test_retry_after_as_http_date_is_honoured() -> None:
    date = "Tue, 12 May 2026 07:00:00 GMT"
    busy = httpx.Response(429, headers={"Retry-After": "Tue, 12 May 2026 07:00:12 GMT", "Date": date})
    peer = Peer([busy, httpx.Response(200, json={"resourceType": "DocumentReference", "id": "dr-1"})])
    sleeps = Sleeps()
    with make_client(peer, sleep=sleeps) as client:
        assert client.read_document(EG, "dr-1")["id"] == "dr-1"
        assert client.last_server_time is not None
    assert sleeps == [12.0]  # relative to the server's Date, not to the local clock


def test_retry_after_beyond_max_delay_gives_up_at_once() -> None:
    peer = Peer([httpx.Response(503, headers={"Retry-After": "3600"})])
    sleeps = Sleeps()
    with make_client(peer, sleep=sleeps) as client, pytest.raises(RetriableError) as info:
        client.read_document(EG, "dr-1")
    assert info.value.retry_after == 3600.0 and info.value.status == 503
    assert sleeps == []


@pytest.mark.parametrize("status", [500, 502, 504])
def test_post_with_an_ambiguous_failure_is_not_resent(status: int) -> None:
    peer = Peer([httpx.Response(status)])
    sleeps = Sleeps()
    with make_client(peer, sleep=sleeps) as client, pytest.raises(DeliveryUncertainError, match="may have been"):
        client.post_task(EG, TASK)
    assert len(peer.fhir_requests()) == 1 and sleeps == []


def test_post_timing_out_after_sending_is_not_resent() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    peer = Peer([timeout])
    with make_client(peer) as client, pytest.raises(DeliveryUncertainError):
        client.post_task(EG, TASK)
    assert len(peer.fhir_requests()) == 1


def test_post_refused_at_connect_is_resent() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    created = httpx.Response(201, json={**TASK, "id": "tk-1", "meta": {"versionId": "1"}},
                             headers={"Location": f"{BASE}/Task/tk-1/_history/1"})
    peer = Peer([refused, created])
    sleeps = Sleeps()
    with make_client(peer, sleep=sleeps) as client:
        result = client.post_task(EG, TASK)
    assert (result.id, result.version_id, result.status) == ("tk-1", "1", 201)
    assert sleeps == [1.0]


def test_get_timeouts_are_retried_then_reported() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    peer = Peer(timeout)
    sleeps = Sleeps()
    with make_client(peer, sleep=sleeps) as client, pytest.raises(RetriableError, match="gave up after 3") as info:
        client.read_document(EG, "dr-1")
    assert not isinstance(info.value, DeliveryUncertainError)
    assert sleeps == [1.0, 2.0]


def test_next_link_to_another_host_is_refused() -> None:
    peer = Peer([httpx.Response(200, json=bundle("a", next_url="https://evil.test/fhir/page2"))])
    with make_client(peer) as client:
        results = client.search_decisions(EG, SINCE)
        assert next(results).id == "a"
        with pytest.raises(RemoteError, match="another server"):
            next(results)
    assert all(r.url.host == "vt.test" for r in peer.requests)


def test_next_link_looping_back_is_detected() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=bundle("a", next_url=str(request.url)))

    peer = Peer(page)
    with make_client(peer) as client, pytest.raises(RemoteError, match="already read"):
        list(client.search_decisions(EG, SINCE))


def test_relative_next_link_and_duplicates_across_pages() -> None:
    pages = [httpx.Response(200, json=bundle("a", "b", next_url="DocumentReference?page=2")),
             httpx.Response(200, json=bundle("b", "c"))]
    peer = Peer(pages)
    with make_client(peer) as client:
        assert [hit.id for hit in client.search_decisions(EG, SINCE)] == ["a", "b", "c"]
    assert str(peer.fhir_requests()[1].url) == f"{BASE}/DocumentReference?page=2"


def test_establishment_of_another_legal_entity_is_refused_before_sending() -> None:
    peer = Peer([])
    with make_client(peer) as client, pytest.raises(ConfigError, match="does not belong to legal entity"):
        client.read_document("750000010", "dr-1")
    assert peer.requests == []


def test_wrong_resource_type_is_refused_before_sending() -> None:
    peer = Peer([])
    with make_client(peer) as client, pytest.raises(ValueError, match="expected a Consent"):
        client.post_consent(EG, TASK)
    assert peer.requests == []


# -- traces and logs -------------------------------------------------------------------------------------

def test_traces_redact_credentials_and_a_failing_callback_is_harmless(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Exchange] = []

    def record(exchange: Exchange) -> None:
        seen.append(exchange)
        raise OSError("evidence disk full")

    created = httpx.Response(201, json={**TASK, "id": "tk-9"}, headers={"Location": f"{BASE}/Task/tk-9/_history/1"})
    peer = Peer([created])
    caplog.set_level(logging.DEBUG)
    with make_client(peer, on_exchange=record) as client:
        assert client.post_task(EG, TASK).id == "tk-9"
    token_trace, task_trace = seen
    assert token_trace.kind == "token" and token_trace.request_headers["authorization"] == "***"
    assert json.loads(token_trace.response_body)["access_token"] == "***"
    assert task_trace.kind == "fhir" and task_trace.status == 201 and task_trace.finess_eg == EG
    assert task_trace.request_headers["authorization"] == "***"
    assert task_trace.request_headers["struct_idnat"] == "1" + EG
    assert json.loads(task_trace.request_body) == TASK
    for secret in ("tok-1", "top-secret-value", "completed", "ZHVp"):  # token, secret, body, base64("dui")
        assert secret not in caplog.text
    assert "POST /fhir/Task 201" in caplog.text


def test_token_never_shows_in_reprs() -> None:
    peer = Peer([httpx.Response(200, json={"resourceType": "DocumentReference", "id": "d"})])
    with make_client(peer) as client:
        client.read_document(EG, "d")
        assert "tok-1" not in repr(client.auth._token)
        assert "top-secret-value" not in repr(client.settings)


def test_failed_renewal_after_401_does_not_reuse_the_refused_token() -> None:
    answers = iter([
        httpx.Response(200, json={"access_token": "old", "token_type": "Bearer", "expires_in": 3600}),
        httpx.Response(503),
        httpx.Response(200, json={"access_token": "new", "token_type": "Bearer", "expires_in": 3600}),
    ])
    fhir = [httpx.Response(401), httpx.Response(200, json={"resourceType": "DocumentReference", "id": "d"})]
    peer = Peer(fhir, token=lambda _: next(answers))
    sleeps = Sleeps()
    with make_client(peer, sleep=sleeps) as client:
        assert client.read_document(EG, "d")["id"] == "d"
    assert [r.headers["Authorization"] for r in peer.fhir_requests()] == ["Bearer old", "Bearer new"]
    assert sleeps == [1.0]
