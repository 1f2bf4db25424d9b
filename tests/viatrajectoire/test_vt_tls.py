"""mTLS context: PEM and PKCS#12 client certificates, trusted CAs, and a clear message for each mistake."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import httpx
import pytest
from vt_pki import EG, EJ, NOW, P12_PASSWORD, PkiFiles, entity, issue, make_ca

from vtdui.errors import ConfigError
from vtdui.viatrajectoire.tls import build_ssl_context


def test_pem_certificate_authenticates_over_mtls(pki: PkiFiles, mtls_server: str) -> None:
    context = build_ssl_context(entity(cert_file=pki.client_cert, key_file=pki.client_key), pki.ca_file)
    response = httpx.get(mtls_server, verify=context)
    assert response.text == EJ


def test_p12_certificate_authenticates_over_mtls_and_leaves_no_file(pki: PkiFiles, mtls_server: str,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    context = build_ssl_context(entity(p12_file=pki.client_p12, p12_password=P12_PASSWORD), pki.ca_file)
    assert list(tmp_path.iterdir()) == []  # the re-written key is gone
    assert httpx.get(mtls_server, verify=context).text == EJ


def test_p12_without_password(pki: PkiFiles, tmp_path: Path, mtls_server: str) -> None:
    p12 = pki.client.p12(tmp_path / "open.p12", None, pki.ca)
    context = build_ssl_context(entity(p12_file=p12), pki.ca_file)
    assert httpx.get(mtls_server, verify=context).text == EJ


def test_context_refuses_old_tls_and_checks_the_server(pki: PkiFiles) -> None:
    context = build_ssl_context(entity(cert_file=pki.client_cert, key_file=pki.client_key), pki.ca_file)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_server_outside_the_trusted_ca_is_refused(pki: PkiFiles, mtls_server: str, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(make_ca("another CA").cert_pem())
    context = build_ssl_context(entity(cert_file=pki.client_cert, key_file=pki.client_key), other)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(mtls_server, verify=context)


def test_wrong_p12_password(pki: PkiFiles) -> None:
    with pytest.raises(ConfigError, match="wrong p12_password") as info:
        build_ssl_context(entity(p12_file=pki.client_p12, p12_password="not-it"), pki.ca_file)
    assert "not-it" not in str(info.value) and P12_PASSWORD not in str(info.value)


def test_missing_p12_password(pki: PkiFiles) -> None:
    with pytest.raises(ConfigError, match="wrong p12_password"):
        build_ssl_context(entity(p12_file=pki.client_p12), pki.ca_file)


def test_file_that_is_not_a_p12(pki: PkiFiles) -> None:
    with pytest.raises(ConfigError, match=r"p12_file: cannot open .*not a PKCS#12"):
        build_ssl_context(entity(p12_file=pki.client_cert, p12_password=P12_PASSWORD), pki.ca_file)


def test_key_not_matching_the_certificate(pki: PkiFiles, tmp_path: Path) -> None:
    _, other_key = issue(pki.ca, "someone else", server=False).write(tmp_path, "other")
    with pytest.raises(ConfigError, match="private key does not match the certificate"):
        build_ssl_context(entity(cert_file=pki.client_cert, key_file=other_key), pki.ca_file)


def test_unreadable_certificate(pki: PkiFiles, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cert_file: cannot read .*missing\.pem"):
        build_ssl_context(entity(cert_file=tmp_path / "missing.pem", key_file=pki.client_key), pki.ca_file)


def test_certificate_path_that_is_a_directory(pki: PkiFiles, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cert_file: cannot read"):
        build_ssl_context(entity(cert_file=tmp_path, key_file=pki.client_key), pki.ca_file)


def test_certificate_file_with_garbage(pki: PkiFiles, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="is not a PEM certificate"):
        build_ssl_context(entity(cert_file=junk, key_file=pki.client_key), pki.ca_file)


def test_ca_file_with_garbage(pki: PkiFiles, tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("nothing")
    with pytest.raises(ConfigError, match=r"viatrajectoire.ca_file: cannot load CA certificates"):
        build_ssl_context(entity(cert_file=pki.client_cert, key_file=pki.client_key), junk)


def test_no_certificate_configured(pki: PkiFiles) -> None:
    with pytest.raises(ConfigError, match="no client certificate"):
        build_ssl_context(entity(cert_file=pki.client_cert), pki.ca_file)


def test_expired_certificate_is_loaded_with_a_warning(pki: PkiFiles, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import datetime as dt

    expired = issue(pki.ca, EJ, server=False, not_after=NOW - dt.timedelta(hours=1))
    cert, key = expired.write(tmp_path, "expired")
    build_ssl_context(entity(cert_file=cert, key_file=key), pki.ca_file)
    assert "client certificate expired" in caplog.text


def test_client_certificate_refused_by_the_server_is_an_auth_error(pki: PkiFiles, mtls_server: str,
                                                                    tmp_path: Path) -> None:
    from vtdui.config import RetrySettings, ViaTrajectoireSettings
    from vtdui.errors import AuthError
    from vtdui.viatrajectoire import ViaTrajectoireClient

    stranger_ca = make_ca("not IGC-Santé")
    cert, key = issue(stranger_ca, EJ, server=False).write(tmp_path, "stranger")
    settings = ViaTrajectoireSettings(base_url=mtls_server + "fhir", token_url=mtls_server + "oauth/token",
                                      client_id="dui", client_secret="s", ca_file=pki.ca_file)
    sleeps: list[float] = []
    with ViaTrajectoireClient(settings, entity(cert_file=cert, key_file=key), RetrySettings(attempts=3),
                              sleep=sleeps.append) as client, pytest.raises(AuthError, match="TLS handshake refused"):
        client.read_document(EG, "dr-1")
    assert sleeps == []  # a refused certificate does not heal by retrying
