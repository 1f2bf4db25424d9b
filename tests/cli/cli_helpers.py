"""Helpers of the command-line tests: a valid configuration around a test client certificate."""

from __future__ import annotations

from pathlib import Path

from vtdui.simulator.pki import Pki

EJ = "350000014"  # valid FINESS (Luhn)
EG = "350000022"


def _config(tmp_path: Path, pki: Pki, **changes: str) -> Path:
    creds = pki.clients[EJ]
    values = {"finess_eg": EG, "p12_file": str(creds.p12), "p12_password": str(creds.p12_password),
              "extra": ""}
    values.update(changes)
    text = f'''
state_dir = "state"
{values["extra"]}
[viatrajectoire]
base_url = "https://127.0.0.1:9/fhir"
token_url = "https://127.0.0.1:9/token"
client_id = "generic"
client_secret = "s3cret"
ca_file = "{pki.ca_cert}"

[[legal_entities]]
finess_ej = "{EJ}"
name = "Association Exemple"
p12_file = "{values["p12_file"]}"
p12_password = "{values["p12_password"]}"

[[legal_entities.establishments]]
finess_eg = "{values["finess_eg"]}"
name = "ESAT Les Ateliers"
is_esat = true
'''
    path = tmp_path / "vtdui.toml"
    path.write_text(text, encoding="utf-8")
    return path
