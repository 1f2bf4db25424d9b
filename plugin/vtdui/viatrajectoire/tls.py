"""Mutual TLS towards ViaTrajectoire: the legal entity's client certificate and the trusted CAs.

ViaTrajectoire authenticates the structure by an IGC-Santé certificate issued on its FINESS EJ,
delivered as a PEM certificate + key or as a password-protected PKCS#12. :func:`build_ssl_context`
turns either form into an :class:`ssl.SSLContext` (TLS 1.2 minimum, hostname checked) that the OAuth2
token request and every FHIR call share.

The :mod:`ssl` module only loads a certificate chain from files. A PKCS#12 is therefore decoded with
``cryptography`` and re-written, key encrypted with a random one-time password, into a private
temporary directory (mode 0700, files 0600) that is removed as soon as the context holds the key: the
clear key never touches the disk.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from vtdui.config import LegalEntity
from vtdui.errors import ConfigError

__all__ = ["CertificateCheck", "build_ssl_context", "check_certificates", "client_certificate"]

log = logging.getLogger(__name__)


def build_ssl_context(entity: LegalEntity, ca_file: Path | None = None) -> ssl.SSLContext:
    """Build the client-side mTLS context of a legal entity.

    Args:
        entity: the legal entity; either ``p12_file`` (+ ``p12_password``) or ``cert_file`` and
            ``key_file`` must be set. When both forms are set the PKCS#12 wins.
        ca_file: PEM bundle of the CAs that sign ViaTrajectoire's server certificate (the IGC-Santé
            chain, or the simulator's test CA); ``None`` trusts the system CAs.

    Returns:
        A context for ``httpx.Client(verify=...)``: TLS >= 1.2, server certificate and hostname verified,
        the client certificate loaded.

    Raises:
        ConfigError: a file is unreadable or not a certificate/key, the PKCS#12 password is wrong, or
            the key does not match the certificate.

    """
    context = _base_context(ca_file)
    where = f"legal entity {entity.finess_ej}"
    if entity.p12_file is not None:
        _load_p12_into(context, entity.p12_file, entity.p12_password, where)
    elif entity.cert_file is not None and entity.key_file is not None:
        _load_pem_into(context, entity.cert_file, entity.key_file, where)
    else:
        raise ConfigError(f"{where}: no client certificate; set p12_file (+ p12_password) or cert_file and key_file")
    return context


def _base_context(ca_file: Path | None) -> ssl.SSLContext:
    if ca_file is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"viatrajectoire.ca_file: cannot load CA certificates from {ca_file}: "
                              f"{_reason(exc)} (expected a PEM bundle)") from exc
    # The CI-SIS transport rules forbid anything older than TLS 1.2.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _load_pem_into(context: ssl.SSLContext, cert_file: Path, key_file: Path, where: str) -> None:
    for name, path in (("cert_file", cert_file), ("key_file", key_file)):
        if not os.access(path, os.R_OK) or not path.is_file():
            raise ConfigError(f"{where}.{name}: cannot read {path}")
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{where}.cert_file: {cert_file} is not a PEM certificate") from exc
    _warn_if_expired(cert, where)
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except ssl.SSLError as exc:
        raise ConfigError(f"{where}: cannot use {cert_file} with {key_file}: {_reason(exc)}") from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the client certificate or key: {exc.strerror}") from exc


def _decode_p12(p12_file: Path, password: str | None, where: str) -> tuple[
    PrivateKeyTypes, x509.Certificate, list[x509.Certificate]
]:
    try:
        data = p12_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}.p12_file: cannot read {p12_file}: {exc.strerror}") from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            data, password.encode("utf-8") if password is not None else None
        )
    except ValueError as exc:
        # cryptography does not tell a wrong password from a damaged file: say both.
        raise ConfigError(f"{where}.p12_file: cannot open {p12_file}: wrong p12_password or not a "
                          "PKCS#12 file") from exc
    if key is None or cert is None:
        raise ConfigError(f"{where}.p12_file: {p12_file} must hold the private key and its certificate")
    return key, cert, extra


def _load_p12_into(context: ssl.SSLContext, p12_file: Path, password: str | None, where: str) -> None:
    key, cert, extra = _decode_p12(p12_file, password, where)
    _warn_if_expired(cert, where)
    one_time = secrets.token_urlsafe(32)
    # The key goes to disk encrypted with a password that only lives in this frame.
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(one_time.encode("ascii")))
    chain_pem = cert.public_bytes(serialization.Encoding.PEM) + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in extra
    )
    directory = tempfile.mkdtemp(prefix="vtdui-p12-")  # mode 0700
    try:
        cert_path = Path(directory, "cert.pem")
        key_path = Path(directory, "key.pem")
        for path, content in ((cert_path, chain_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
        try:
            context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path), password=one_time)
        except ssl.SSLError as exc:
            raise ConfigError(f"{where}.p12_file: {p12_file} is unusable: {_reason(exc)}") from exc
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _warn_if_expired(cert: x509.Certificate, where: str) -> None:
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        log.warning("%s: client certificate expired on %s; ViaTrajectoire will refuse the connection",
                    where, cert.not_valid_after_utc.date().isoformat())
    elif cert.not_valid_before_utc > now:
        log.warning("%s: client certificate not valid before %s", where, cert.not_valid_before_utc.isoformat())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "KEY_VALUES_MISMATCH":
            return "the private key does not match the certificate"
        if exc.reason in {"PEM_LIB", "NO_START_LINE"}:
            return "not a PEM certificate/key (or the key is encrypted)"
        return str(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def client_certificate(entity: LegalEntity) -> x509.Certificate:
    """Return the client certificate of a legal entity (from its PKCS#12 or PEM file).

    Raises:
        ConfigError: the file is unreadable, not a certificate, or the PKCS#12 password is wrong.
    """
    where = f"legal entity {entity.finess_ej}"
    if entity.p12_file is not None:
        return _decode_p12(entity.p12_file, entity.p12_password, where)[1]
    if entity.cert_file is None:
        raise ConfigError(f"{where}: no client certificate; set p12_file (+ p12_password) or cert_file and key_file")
    try:
        return x509.load_pem_x509_certificate(entity.cert_file.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{where}.cert_file: cannot read {entity.cert_file}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{where}.cert_file: {entity.cert_file} is not a PEM certificate") from exc


@dataclass(frozen=True)
class CertificateCheck:
    """What :func:`check_certificates` found for one legal entity.

    Attributes:
        finess_ej: the legal entity.
        subject: the certificate subject (RFC 4514), empty when it could not be read.
        not_after: end of validity, ``None`` when it could not be read.
        error: why the certificate cannot be used (``None`` when it can).
    """

    finess_ej: str
    subject: str = ""
    not_after: datetime | None = None
    error: str | None = None

    @property
    def days_left(self) -> int | None:
        """Whole days until expiry (negative once expired)."""
        if self.not_after is None:
            return None
        return (self.not_after - datetime.now(UTC)).days


def check_certificates(entities: Iterable[LegalEntity], ca_file: Path | None = None) -> list[CertificateCheck]:
    """Load every legal entity's certificate and key as a connection would, and report each outcome.

    Every entity is checked even when one fails, so one run names every broken certificate.
    """
    results: list[CertificateCheck] = []
    for entity in entities:
        try:
            cert = client_certificate(entity)
            build_ssl_context(entity, ca_file)
        except ConfigError as exc:
            results.append(CertificateCheck(entity.finess_ej, error=str(exc)))
            continue
        results.append(CertificateCheck(entity.finess_ej, cert.subject.rfc4514_string(), cert.not_valid_after_utc,
                                        "expired" if cert.not_valid_after_utc < datetime.now(UTC) else None))
    return results
