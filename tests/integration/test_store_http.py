"""HapiStore talks to HAPI over one HTTP stack: one client, one connection reused, one error translation.

Against the session's real HAPI server: a search over several pages, reads, history and a transaction all go
through the client given to the store (so an injected transport sees every request, searches included) and
over one kept-alive connection. A status a real server rarely produces on a search page (429, 503) is
checked in tests/mapping/test_store_errors.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from vtdui.store import HapiStore

pytestmark = pytest.mark.integration

TAG_SYSTEM = "urn:vtdui:test"


class CountingTransport(httpx.HTTPTransport):
    """The real transport, counting the requests it carries and the TCP connections it opens."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []
        self.connections: set[int] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        response = super().handle_request(request)
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self.connections.add(id(stream))
        return response


def _basic(code: str, n: int) -> dict[str, Any]:
    return {"resourceType": "Basic", "id": f"vtdui-http-{code}-{n}",
            "meta": {"tag": [{"system": TAG_SYSTEM, "code": code}]},
            "code": {"coding": [{"system": TAG_SYSTEM, "code": "store-http"}]}}


def test_every_request_goes_through_the_given_client_over_one_connection(hapi_base_url: str) -> None:
    code = f"store-http-{uuid.uuid4().hex[:12]}"
    transport = CountingTransport()
    client = httpx.Client(transport=transport, timeout=120)
    with HapiStore(hapi_base_url, client=client) as store:
        entries = [{"resource": _basic(code, n), "request": {"method": "PUT", "url": f"Basic/vtdui-http-{code}-{n}"}}
                   for n in range(5)]
        store.transaction(entries)
        found = store.search("Basic", {"_tag": f"{TAG_SYSTEM}|{code}", "_count": "2", "_sort": "_id"})
        assert [r["id"] for r in found] == [f"vtdui-http-{code}-{n}" for n in range(5)]
        assert store.read("Basic", f"vtdui-http-{code}-0") is not None
        assert len(store.history("Basic", f"vtdui-http-{code}-0")) == 1
    # the transaction, three search pages (2 + 2 + 1, following HAPI's next links), the read, the history
    assert len(transport.requests) == 6, transport.requests
    assert sum(r.startswith("GET") for r in transport.requests) == 5
    assert len(transport.connections) == 1, "each request opened a new connection"
    client.close()


def test_default_client_also_reuses_its_connection(hapi_base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real = httpx.HTTPTransport.handle_request

    def spy(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        response = real(self, request)
        stream = response.extensions.get("network_stream")
        if stream is not None and id(stream) not in opened:
            opened.append(id(stream))
        return response

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", spy)
    with HapiStore(hapi_base_url) as store:
        for _ in range(5):
            store.search("Basic", {"_tag": f"{TAG_SYSTEM}|nothing-{uuid.uuid4().hex}"})
    assert len(opened) == 1
