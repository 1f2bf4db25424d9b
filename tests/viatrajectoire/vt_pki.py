"""A throw-away PKI for the client's own tests: a CA, a server certificate for 127.0.0.1, client certs, p12."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vtdui.config import Establishment, LegalEntity
from vtdui.identifiers import finess_key

NOW = dt.datetime.now(dt.UTC)
EJ = "35000001" + finess_key("35000001")
EG = "35000002" + finess_key("35000002")
P12_PASSWORD = "s3cret-p12"


@dataclass(frozen=True)
class PkiFiles:
    directory: Path
    ca: Issued
    ca_file: Path
    server_cert: Path
    server_key: Path
    client: Issued
    client_cert: Path
    client_key: Path
    client_p12: Path




def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # fast; ssl accepts EC client keys as well as RSA


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name(attrs)


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem())
        key.write_bytes(self.key_pem())
        key.chmod(0o600)
        return cert, key

    def p12(self, path: Path, password: str | None, ca: Issued | None = None) -> Path:
        encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                      else serialization.NoEncryption())
        path.write_bytes(pkcs12.serialize_key_and_certificates(
            b"client", self.key, self.cert, [ca.cert] if ca else None, encryption))
        return path


def make_ca(cn: str = "vtdui test CA") -> Issued:
    key = _key()
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(key, cert)


def issue(ca: Issued, cn: str, *, server: bool, ou: str | None = None,
          not_after: dt.datetime | None = None) -> Issued:
    key = _key()
    builder = (x509.CertificateBuilder().subject_name(_name(cn, ou)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1))
               .not_valid_after(not_after or NOW + dt.timedelta(days=30))
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def make_pki(directory: Path) -> PkiFiles:
    ca = make_ca()
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem())
    server_cert, server_key = issue(ca, "127.0.0.1", server=True).write(directory, "server")
    client = issue(ca, EJ, server=False, ou=EJ)
    client_cert, client_key = client.write(directory, "client")
    p12 = client.p12(directory / "client.p12", P12_PASSWORD, ca)
    return PkiFiles(directory, ca, ca_file, server_cert, server_key, client, client_cert, client_key, p12)


def entity(**files: object) -> LegalEntity:
    return LegalEntity(finess_ej=EJ, name="Association test", establishments=(Establishment(EG, "IME test"),),
                       **files)  # type: ignore[arg-type]
