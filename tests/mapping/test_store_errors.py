"""HapiStore translates what HAPI answers into the error tree (statuses a real server rarely produces)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from vtdui.errors import HapiError, RetriableError
from vtdui.store import HapiStore

OUTCOME = {"resourceType": "OperationOutcome",
           "issue": [{"severity": "error", "code": "processing", "diagnostics": "HAPI-0929: bad reference"}]}


def _store(handler: Callable[[httpx.Request], httpx.Response]) -> HapiStore:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return HapiStore("http://hapi.test/fhir", client=client)


def test_refused_transaction_carries_the_operation_outcome() -> None:
    store = _store(lambda request: httpx.Response(400, json=OUTCOME))
    with pytest.raises(HapiError) as caught:
        store.transaction([])
    assert caught.value.status == 400
    assert caught.value.outcome == OUTCOME
    assert "bad reference" in str(caught.value)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retriable(status: int) -> None:
    store = _store(lambda request: httpx.Response(status, headers={"Retry-After": "7"}, text="busy"))
    with pytest.raises(RetriableError) as caught:
        store.transaction([])
    assert caught.value.status == status
    assert caught.value.retry_after == 7.0


def test_network_failure_is_retriable() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetriableError, match="unreachable"):
        _store(fail).transaction([])


def test_transaction_posts_a_transaction_bundle_to_the_base() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": []})

    response = _store(answer).transaction([{"resource": {"resourceType": "Patient"},
                                            "request": {"method": "POST", "url": "Patient"}}])
    assert response["type"] == "transaction-response"
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", "http://hapi.test/fhir/")
    assert request.headers["Content-Type"] == "application/fhir+json"
    body = httpx.Response(200, content=request.content).json()
    assert (body["resourceType"], body["type"], len(body["entry"])) == ("Bundle", "transaction", 1)


def test_a_non_bundle_answer_is_an_error() -> None:
    with pytest.raises(HapiError, match="without a Bundle"):
        _store(lambda request: httpx.Response(200, json={"resourceType": "Patient"})).transaction([])


def test_update_sends_if_match_and_read_maps_absent_to_none() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(410, json=OUTCOME)
        return httpx.Response(412, json=OUTCOME)

    store = _store(answer)
    assert store.read("Task", "gone") is None
    with pytest.raises(HapiError) as caught:
        store.update({"resourceType": "Task", "id": "t1"}, if_match="4")
    assert caught.value.status == 412
    assert seen[-1].headers["If-Match"] == 'W/"4"'
    with pytest.raises(HapiError, match="resourceType and id"):
        store.update({"resourceType": "Task"})


@pytest.mark.parametrize("status", [429, 503])
def test_search_pages_are_translated_like_every_other_request(status: int) -> None:
    # the second page of a search fails the way a busy server does: retriable, as for a write
    def answer(request: httpx.Request) -> httpx.Response:
        if "page=2" in str(request.url):
            return httpx.Response(status, headers={"Retry-After": "3"}, text="busy")
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset",
                                         "link": [{"relation": "next", "url": "http://hapi.test/fhir?page=2"}],
                                         "entry": [{"resource": {"resourceType": "Task", "id": "1"}}]})

    with pytest.raises(RetriableError) as caught:
        _store(answer).search("Task", {"code": "x"})
    assert (caught.value.status, caught.value.retry_after) == (status, 3.0)


def test_search_sends_its_parameters_and_keeps_only_the_type_asked() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Task", "id": "1"}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Organization", "id": "o"}, "search": {"mode": "include"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}]})

    found = _store(answer).search("Task", {"business-status": "s|39", "_tag": ["a|1", "b|2"]})
    assert found == [{"resourceType": "Task", "id": "1"}]
    (request,) = seen
    assert request.url.path == "/fhir/Task"
    assert request.url.params.get_list("_tag") == ["a|1", "b|2"]
    assert (request.url.params["business-status"], request.url.params["_count"]) == ("s|39", "100")
