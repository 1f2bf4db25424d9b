"""The receiver: authenticates HAPI, queues before answering, refuses what it cannot queue."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from vtdui.errors import ConfigError, RetriableError
from vtdui.receiver import SECRET_HEADER, create_app, subscription_templates

from .outbound_fixtures import worklist_task

SECRET = "s3cret-for-tests-only"


class RecordingSink:
    """Stands in for the emitter: the receiver's contract is only 'hand the resource over, then answer'."""

    def __init__(self, fail: bool = False) -> None:
        self.received: list[Mapping[str, Any]] = []
        self.fail = fail

    def enqueue_resource(self, resource: Mapping[str, Any]) -> list[Any]:
        if self.fail:
            raise RetriableError("HAPI unreachable")
        self.received.append(resource)
        return []


@pytest.fixture
def client_for(http_server: Any) -> Iterator[Callable[[RecordingSink], httpx.Client]]:
    """Run the real receiver app over HTTP on loopback, one per test."""
    with ExitStack() as stack:
        def make(sink: RecordingSink) -> httpx.Client:
            base = stack.enter_context(http_server(create_app(sink, SECRET)))
            return stack.enter_context(httpx.Client(base_url=base, timeout=30))
        yield make


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"},
                                     {SECRET_HEADER: ""}, {"Authorization": f"Bearer {SECRET}"}])
def test_missing_or_wrong_secret_is_401_and_nothing_is_queued(client_for: Any, headers: dict[str, str]) -> None:
    sink = RecordingSink()
    task = worklist_task(statut="41", motif="152")
    response = client_for(sink).put("/vtdui/hook/Task/wl-1", json=task, headers=headers)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert sink.received == []


def test_put_with_the_secret_is_handed_over(client_for: Any) -> None:
    sink = RecordingSink()
    task = worklist_task(statut="41", motif="152")
    response = client_for(sink).put("/vtdui/hook/Task/wl-1", json=task, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 200, response.text
    assert [r["id"] for r in sink.received] == ["wl-1"]


def test_post_on_the_endpoint_is_accepted(client_for: Any) -> None:
    sink = RecordingSink()
    response = client_for(sink).post("/vtdui/hook", json=worklist_task(), headers={SECRET_HEADER: SECRET})
    assert response.status_code == 200
    assert len(sink.received) == 1


def test_failure_to_queue_answers_500_so_hapi_delivers_again(client_for: Any) -> None:
    response = client_for(RecordingSink(fail=True)).put("/vtdui/hook/Task/wl-1", json=worklist_task(),
                                                     headers={SECRET_HEADER: SECRET})
    assert response.status_code == 500


def test_bad_bodies_are_refused(client_for: Any) -> None:
    sink = RecordingSink()
    client = client_for(sink)
    auth = {SECRET_HEADER: SECRET}
    assert client.put("/vtdui/hook/Task/wl-1", content=b"{not json", headers=auth).status_code == 400
    assert client.put("/vtdui/hook/Patient/p1", json={"resourceType": "Patient", "id": "p1"},
                      headers=auth).status_code == 400
    assert client.put("/vtdui/hook/Task/other", json=worklist_task(), headers=auth).status_code == 400
    assert client.delete("/vtdui/hook/Task/wl-1", headers=auth).status_code == 200
    assert sink.received == []


def test_no_secret_no_receiver() -> None:
    with pytest.raises(ConfigError, match=r"receiver\.secret"):
        create_app(RecordingSink(), "")


def test_subscription_templates_cover_worklist_tasks_and_consents() -> None:
    templates = {t["id"]: t for t in subscription_templates()}
    assert templates["vtdui-worklist-task"]["criteria"] == "Task?code=urn:vtdui:task-kind|worklist-item"
    assert templates["vtdui-consent"]["criteria"] == "Consent?status=active"
    for template in templates.values():
        assert template["channel"]["payload"] == "application/fhir+json"
        assert template["channel"]["header"] == [f"{SECRET_HEADER}: {{secret}}"]
