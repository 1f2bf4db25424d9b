"""A small PKI standing in for IGC-Santé: a CA, the server certificate, one client certificate per legal entity.

Everything lives in ``<data dir>/pki`` and is reused on the next start, so a DUI configured once keeps
working. Layout::

    pki/ca.pem, ca.key                       the test CA (trust store of both sides)
    pki/server.pem, server.key               server certificate (SAN localhost, 127.0.0.1)
    pki/clients/<FINESS EJ>.pem, .key, .p12  client certificate of a legal entity ("ORG AUTH_CLI"-like:
                                             O=<name>, OU=<FINESS EJ>, CN=<FINESS EJ>)
    pki/unknown/ca.pem, client.pem, .key     a client certificate from another CA (negative tests)
    pki/secrets.json                         PKCS#12 passwords and the OAuth2 client id/secret (mode 0600)

Private keys and ``secrets.json`` are written with owner-only permissions.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClientCredentials", "Pki", "ensure_pki", "finess_ej_of"]

_VALIDITY = dt.timedelta(days=825)
_RENEW_BEFORE = dt.timedelta(days=30)
_KEY_SIZE = 2048  # IGC-Santé issues RSA 2048 keys


@dataclass(frozen=True)
class ClientCredentials:
    """The files of one client certificate.

    Attributes:
        cert: PEM certificate.
        key: PEM private key (unencrypted, mode 0600).
        p12: PKCS#12 bundle (key + certificate + CA), protected by ``p12_password``.
        p12_password: password of the PKCS#12 bundle.
    """

    cert: Path
    key: Path
    p12: Path | None = None
    p12_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Pki:
    """Paths of the simulator's PKI and its generated secrets.

    Attributes:
        directory: ``<data dir>/pki``.
        ca_cert: CA certificate (trust store for the DUI and for the server's client-cert check).
        server_cert: server certificate.
        server_key: server private key.
        clients: client credentials per FINESS EJ.
        unknown: a client certificate signed by a CA the server does not trust.
        unknown_ca_cert: that other CA.
        client_id: the generic OAuth2 client id.
        client_secret: the generic OAuth2 client secret.
    """

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, ClientCredentials]
    unknown: ClientCredentials
    unknown_ca_cert: Path
    client_id: str
    client_secret: str = field(repr=False)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_ca(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = _new_key()
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vtdui simulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, subject: x509.Name, *,
           server: bool, sans: Iterable[x509.GeneralName] = ()) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = _new_key()
    now = _now()
    eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    san_list = list(sans)
    if san_list:
        builder = builder.add_extension(x509.SubjectAlternativeName(san_list), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _client_subject(finess_ej: str, name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name[:64] or finess_ej),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, finess_ej),
        x509.NameAttribute(NameOID.COMMON_NAME, finess_ej),
    ])


def finess_ej_of(cert: x509.Certificate) -> str | None:
    """Return the FINESS EJ a client certificate was issued for (its subject OU), if any."""
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _still_valid(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - _now() > _RENEW_BEFORE


def _load_secrets(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def ensure_pki(directory: Path, legal_entities: Iterable[tuple[str, str]], *,
               client_id: str | None = None, client_secret: str | None = None) -> Pki:
    """Create the PKI in ``directory``, or reuse and complete the one already there.

    Args:
        directory: where to keep it (``<data dir>/pki``).
        legal_entities: ``(FINESS EJ, name)`` of every legal entity that needs a client certificate.
        client_id: OAuth2 client id to use (default: the stored one, or ``vtdui-simulator``).
        client_secret: OAuth2 client secret to use (default: the stored one, or a new random one).

    Returns:
        The paths and secrets.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = directory / "ca.pem", directory / "ca.key"
    secrets_path = directory / "secrets.json"
    stored = _load_secrets(secrets_path)
    fresh_ca = not (ca_cert_path.is_file() and ca_key_path.is_file())
    if fresh_ca:
        ca_key, ca_cert = _make_ca("vtdui simulator test CA (IGC-Santé stand-in)")
        _write_private(ca_key_path, _key_pem(ca_key))
        _write_public(ca_cert_path, _cert_pem(ca_cert))
        stored.pop("p12_passwords", None)
    else:
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())

    server_cert, server_key = directory / "server.pem", directory / "server.key"
    if fresh_ca or not _still_valid(server_cert) or not server_key.is_file():
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vtdui simulator"),
                             x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        key, cert = _issue(ca_key, ca_cert, subject, server=True, sans=sans)
        _write_private(server_key, _key_pem(key))
        _write_public(server_cert, _cert_pem(cert))

    raw_passwords = stored.get("p12_passwords")
    passwords: dict[str, str] = (
        {str(k): str(v) for k, v in raw_passwords.items()} if isinstance(raw_passwords, dict) else {}
    )
    clients: dict[str, ClientCredentials] = {}
    for finess_ej, name in legal_entities:
        base = directory / "clients"
        cert_path, key_path, p12_path = base / f"{finess_ej}.pem", base / f"{finess_ej}.key", base / f"{finess_ej}.p12"
        password = passwords.get(finess_ej)
        if fresh_ca or password is None or not (_still_valid(cert_path) and key_path.is_file() and p12_path.is_file()):
            key, cert = _issue(ca_key, ca_cert, _client_subject(finess_ej, name), server=False)
            password = secrets.token_urlsafe(12)
            _write_private(key_path, _key_pem(key))
            _write_public(cert_path, _cert_pem(cert))
            p12 = pkcs12.serialize_key_and_certificates(
                finess_ej.encode(), key, cert, [ca_cert], serialization.BestAvailableEncryption(password.encode()))
            _write_private(p12_path, p12)
            passwords[finess_ej] = password
        clients[finess_ej] = ClientCredentials(cert_path, key_path, p12_path, password)

    unknown_dir = directory / "unknown"
    unknown = ClientCredentials(unknown_dir / "client.pem", unknown_dir / "client.key")
    unknown_ca = unknown_dir / "ca.pem"
    if not (_still_valid(unknown.cert) and unknown.key.is_file() and unknown_ca.is_file()):
        rogue_key, rogue_cert = _make_ca("Untrusted CA (negative tests)")
        first_ej = next(iter(clients), "000000000")
        key, cert = _issue(rogue_key, rogue_cert, _client_subject(first_ej, "Impostor"), server=False)
        _write_public(unknown_ca, _cert_pem(rogue_cert))
        _write_private(unknown.key, _key_pem(key))
        _write_public(unknown.cert, _cert_pem(cert))

    final_id = client_id or str(stored.get("client_id") or "vtdui-simulator")
    final_secret = client_secret or str(stored.get("client_secret") or secrets.token_urlsafe(24))
    _write_private(secrets_path, json.dumps({
        "client_id": final_id, "client_secret": final_secret, "p12_passwords": passwords,
    }, indent=2).encode("utf-8"))
    return Pki(directory=directory, ca_cert=ca_cert_path, server_cert=server_cert, server_key=server_key,
               clients=clients, unknown=unknown, unknown_ca_cert=unknown_ca, client_id=final_id,
               client_secret=final_secret)
