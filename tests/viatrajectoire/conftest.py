"""Fixtures of the ViaTrajectoire client tests: a throw-away PKI (see vt_pki)."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator

import pytest
from vt_pki import PkiFiles, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


class _EchoCN(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert()
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        body = str(subject.get("commonName", "")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mtls_server(pki: PkiFiles) -> Iterator[str]:
    """A real HTTPS server on 127.0.0.1 that requires a client certificate from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_file))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoCN)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
