"""A small real FHIR terminology server (HTTP on 127.0.0.1) for the update tests.

Serves ``GET ValueSet?url=``, ``GET ValueSet/$expand?url=&count=&offset=`` and ``GET ConceptMap?url=``
from in-memory resources, and records every request so tests can see the paging.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class TermServerState:
    valuesets: dict[str, dict[str, Any]] = field(default_factory=dict)  # url -> ValueSet with "codes"
    conceptmaps: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    fail_status: int | None = None


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r} for r in resources]}


def _handler(state: TermServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # silence stderr
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.requests.append(self.path)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if state.fail_status:
                self._send(state.fail_status, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "exception"}]})
                return
            if parts.path == "/fhir/ValueSet":
                vs = state.valuesets.get(query.get("url", ""))
                self._send(200, _bundle([{k: v for k, v in vs.items() if k != "codes"}] if vs else []))
            elif parts.path == "/fhir/ValueSet/$expand":
                vs = state.valuesets.get(query.get("url", ""))
                if vs is None:
                    self._send(404, {"resourceType": "OperationOutcome", "issue": [
                        {"severity": "error", "code": "not-found"}]})
                    return
                count, offset = int(query.get("count", "1000")), int(query.get("offset", "0"))
                codes = vs["codes"]
                self._send(200, {"resourceType": "ValueSet", "url": vs["url"], "version": vs["version"],
                                 "expansion": {"total": len(codes), "offset": offset,
                                               "contains": codes[offset:offset + count]}})
            elif parts.path == "/fhir/ConceptMap":
                cm = state.conceptmaps.get(query.get("url", ""))
                self._send(200, _bundle([cm] if cm else []))
            else:
                self._send(404, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "not-found"}]})

    return Handler


@contextmanager
def serve(state: TermServerState) -> Iterator[str]:
    """Run the server on a free port of 127.0.0.1; yield its FHIR base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
