"""The receiver over real HTTP: authenticates HAPI, answers only OperationOutcomes, refuses what it cannot read.

The sink stands in for the emitter here (its contract is "given type, id and version, queue or say HAPI does
not hold it"); the receiver with the real emitter and HAPI is tested in ``tests/e2e/outbound``.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import uvicorn

from vtdui.errors import ConfigError, RetriableError
from vtdui.receiver import SECRET_HEADER, ReceiverProtocol, create_app, server_config, subscription_templates

from .outbound_fixtures import worklist_task

SECRET = "s3cret-for-tests-only"
AUTH = {SECRET_HEADER: SECRET}


class RecordingSink:
    """Records the notifications; ``held`` is what "HAPI" holds (``None``: everything)."""

    def __init__(self, fail: bool = False, held: set[tuple[str, str, str | None]] | None = None) -> None:
        self.received: list[tuple[str, str, str | None]] = []
        self.fail = fail
        self.held = held

    def enqueue_notification(self, resource_type: str, resource_id: str, version: str | None) -> list[Any] | None:
        if self.fail:
            raise RetriableError("HAPI unreachable")
        if self.held is not None and (resource_type, resource_id, version) not in self.held:
            return None
        self.received.append((resource_type, resource_id, version))
        return []


@pytest.fixture
def serve_sink(http_server: Any) -> Iterator[Callable[..., tuple[httpx.Client, str]]]:
    """Run the real receiver app over HTTP on loopback, one per test."""
    with ExitStack() as stack:
        def make(sink: RecordingSink, **options: Any) -> tuple[httpx.Client, str]:
            base = stack.enter_context(http_server(create_app(sink, SECRET, **options)))
            return stack.enter_context(httpx.Client(base_url=base, timeout=30)), base
        yield make


@pytest.fixture
def client_for(serve_sink: Any) -> Callable[[RecordingSink], httpx.Client]:
    return lambda sink: serve_sink(sink)[0]


def assert_outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    """What HAPI's REST-hook client needs: the status, and a body that is a FHIR resource."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"]
    return body


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"},
                                     {SECRET_HEADER: ""}, {"Authorization": f"Bearer {SECRET}"}])
def test_missing_or_wrong_secret_is_401_and_nothing_is_queued(client_for: Any, headers: dict[str, str]) -> None:
    sink = RecordingSink()
    task = worklist_task(statut="41", motif="152")
    assert_outcome(client_for(sink).put("/vtdui/hook/Task/wl-1", json=task, headers=headers), 401)
    assert sink.received == []


def test_every_answer_is_an_operation_outcome(client_for: Any) -> None:
    """Accepted, nothing to do, refused, error: PUT and POST, with and without payload."""
    sink = RecordingSink()
    client = client_for(sink)
    task = worklist_task(statut="41", motif="152")
    body = assert_outcome(client.put("/vtdui/hook/Task/wl-1", json=task, headers=AUTH), 200)
    assert body["issue"][0]["severity"] == "information"
    assert_outcome(client.post("/vtdui/hook", json=task, headers=AUTH), 200)
    assert_outcome(client.post("/vtdui/hook/Task", json=task, headers=AUTH), 200)
    assert_outcome(client.post("/vtdui/hook", content=b"", headers=AUTH), 200)  # payload-less notification
    assert_outcome(client.put("/vtdui/hook/Task/wl-1", content=b"", headers=AUTH), 200)
    assert_outcome(client.delete("/vtdui/hook/Task/wl-1", headers=AUTH), 200)
    assert_outcome(client.put("/vtdui/hook/Task/wl-1", content=b"{not json", headers=AUTH), 400)
    failing = client_for(RecordingSink(fail=True))
    assert_outcome(failing.put("/vtdui/hook/Task/wl-1", json=task, headers=AUTH), 500)
    assert sink.received == [("Task", "wl-1", "2")] * 3


def test_only_type_id_and_version_are_handed_over(client_for: Any) -> None:
    sink = RecordingSink()
    task = worklist_task(statut="41", motif="152")
    task["meta"] = {"versionId": "7", "source": "anything"}
    assert_outcome(client_for(sink).put("/vtdui/hook/Task/wl-1", json=task, headers=AUTH), 200)
    del task["meta"]
    assert_outcome(client_for(sink).put("/vtdui/hook/Task/wl-1", json=task, headers=AUTH), 200)
    assert sink.received == [("Task", "wl-1", "7"), ("Task", "wl-1", None)]


def test_a_version_hapi_does_not_hold_is_refused_422(client_for: Any, caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink(held={("Task", "wl-1", "3")})
    task = worklist_task(statut="41", motif="152")
    task["meta"] = {"versionId": "45"}
    body = assert_outcome(client_for(sink).put("/vtdui/hook/Task/wl-1", json=task, headers=AUTH), 422)
    assert "version 45" in body["issue"][0]["diagnostics"]
    assert sink.received == []
    assert "refused: HAPI does not hold it" in caplog.text


def test_failure_to_queue_answers_500_so_hapi_delivers_again(client_for: Any) -> None:
    response = client_for(RecordingSink(fail=True)).put("/vtdui/hook/Task/wl-1", json=worklist_task(),
                                                     headers=AUTH)
    assert_outcome(response, 500)


MALFORMED: list[bytes] = [
    b"{not json",
    b"[" * 100_000 + b"]" * 100_000,  # nested past Python's recursion limit
    b'"a string"', b"42", b"null", b"[]",
    json.dumps({"resourceType": "Patient", "id": "wl-1"}).encode(),
    json.dumps({"resourceType": "Task"}).encode(),
    json.dumps({"resourceType": "Task", "id": 12}).encode(),
    json.dumps({"resourceType": "Task", "id": "../Patient/x"}).encode(),
    json.dumps({"resourceType": "Task", "id": "wl-1", "meta": "v2"}).encode(),
    json.dumps({"resourceType": "Task", "id": "wl-1", "meta": {"versionId": ["2"]}}).encode(),
    json.dumps({"resourceType": "Task", "id": "wl-1", "meta": {"versionId": "2/../../x"}}).encode(),
    json.dumps({"resourceType": "Task", "id": "other"}).encode(),  # not the id the URL names
    b"\xff\xfe garbage",
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_json_of_any_shape_is_a_400_operation_outcome(client_for: Any, body: bytes) -> None:
    sink = RecordingSink()
    assert_outcome(client_for(sink).put("/vtdui/hook/Task/wl-1", content=body, headers=AUTH), 400)
    assert sink.received == []


def _raw_request(base: str, head: str, timeout: float = 10) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=timeout)
    conn.sendall(f"{head}\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\nContent-Type: application/fhir+json\r\n"
                 .encode())
    return conn


def test_an_oversized_chunked_body_is_refused_while_read(serve_sink: Any) -> None:
    """6 MB sent in chunks without a Content-Length, the body never finished: 413 as soon as the limit passes."""
    sink = RecordingSink()
    client, base = serve_sink(sink)
    with _raw_request(base, "PUT /vtdui/hook/Task/wl-1 HTTP/1.1") as conn:
        conn.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * (256 * 1024)
        for _ in range(24):
            conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = conn.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "content-type: application/fhir+json" in answer.lower()
    declared = client.put("/vtdui/hook/Task/wl-1", content=b"x" * (6 * 1024 * 1024), headers=AUTH)
    assert_outcome(declared, 413)
    assert sink.received == []


def test_a_slow_body_is_cut_off(serve_sink: Any) -> None:
    sink = RecordingSink()
    _, base = serve_sink(sink, body_timeout=1.0)
    with _raw_request(base, "PUT /vtdui/hook/Task/wl-1 HTTP/1.1") as conn:
        conn.sendall(b"Content-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        answer = conn.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408"), answer
    assert time.monotonic() - started < 8
    assert sink.received == []


class _QuickHeads(ReceiverProtocol):
    header_timeout = 1.0


@pytest.fixture
def served_with_head_deadline() -> Iterator[str]:
    """The receiver as `vtdui run` serves it (``server_config``), head deadline shortened to 1 s."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = server_config(create_app(RecordingSink(), SECRET), "127.0.0.1", port)
    config.http = _QuickHeads
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _closed_within(conn: socket.socket, seconds: float) -> bool:
    conn.settimeout(seconds)
    try:
        while conn.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def test_a_slow_request_head_is_cut_off(served_with_head_deadline: str) -> None:
    with _raw_request(served_with_head_deadline, "PUT /vtdui/hook/Task/wl-1 HTTP/1.1") as conn:
        started = time.monotonic()
        assert _closed_within(conn, 8), "the connection stayed open with a head never finished"
        assert time.monotonic() - started < 8
    # after a first answer on a kept-alive connection, the next head is bounded too
    with _raw_request(served_with_head_deadline, "DELETE /vtdui/hook/Task/wl-1 HTTP/1.1") as conn:
        conn.sendall(b"\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        conn.sendall(b"PUT /vtdui/hook/Task/wl-1 HTTP/1.1\r\nHost: x\r\n")
        assert _closed_within(conn, 8)


def test_uvicorns_own_log_lines_go_through_the_json_formatter_and_redaction() -> None:
    """In a process of its own, as in `vtdui run`: vtdui's logging, then the receiver's uvicorn configuration."""
    script = textwrap.dedent("""
        import logging, sys
        from vtdui.logs import setup_logging
        from vtdui.receiver import server_config
        setup_logging("INFO", "json", stream=sys.stdout)
        server_config(lambda *a: None, "127.0.0.1", 0)
        logging.getLogger("uvicorn.error").error("Invalid HTTP request, Authorization: Bearer eyJsecret.tok.en")
        logging.getLogger("uvicorn").warning("plain uvicorn line")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "uvicorn"], done.stdout + done.stderr
    assert "eyJsecret" not in done.stdout + done.stderr and "[REDACTED]" in lines[0]["message"]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_client_gone_mid_body_leaves_no_error(serve_sink: Any) -> None:
    sink = RecordingSink()
    client, base = serve_sink(sink)
    errors = _Collect()  # on uvicorn's logger itself: the test server's uvicorn does not propagate to the root
    logging.getLogger("uvicorn.error").addHandler(errors)
    try:
        with _raw_request(base, "PUT /vtdui/hook/Task/wl-1 HTTP/1.1") as conn:
            conn.sendall(b"Content-Length: 1000\r\n\r\n{\"resourceType\": ")
        time.sleep(0.5)
        assert_outcome(client.delete("/vtdui/hook/Task/wl-1", headers=AUTH), 200)  # still serving
    finally:
        logging.getLogger("uvicorn.error").removeHandler(errors)
    assert [r.getMessage() for r in errors.records] == []
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
