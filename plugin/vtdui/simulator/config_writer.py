"""Write a ready-to-use ``vtdui.toml`` for a DUI that talks to this simulator.

The file lands in the data directory (mode 0600: it holds the client secret and the PKCS#12 passwords)
and validates with :func:`vtdui.config.load_config`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vtdui.simulator.context import SimulatorContext

__all__ = ["write_dui_config"]


def _s(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML escapes)."""
    return json.dumps(value, ensure_ascii=False)


def render_dui_config(ctx: SimulatorContext) -> str:
    """The text of ``vtdui.toml`` for this simulator."""
    s = ctx.settings
    lines = [
        "# Written by `vtdui simulator`: a DUI configuration pointing at this ViaTrajectoire simulator.",
        "# Secrets are literal here because this is a sandbox; in production use \"env:NAME\" or \"file:/path\".",
        f"state_dir = {_s('dui-state')}",
        "",
        "[hapi]",
        f"base_url = {_s(s.hapi_base_url)}",
        "",
        "[viatrajectoire]",
        f"base_url = {_s(ctx.fhir_base_url)}",
        f"token_url = {_s(ctx.token_url)}",
        f"client_id = {_s(ctx.pki.client_id)}",
        f"client_secret = {_s(ctx.pki.client_secret)}",
        f"ca_file = {_s(str(ctx.pki.ca_cert))}",
    ]
    if s.page_size:
        lines.append(f"page_size = {int(s.page_size)}")
    for entity in ctx.state.entities:
        creds = ctx.pki.clients[entity.finess_ej]
        lines += [
            "",
            "[[legal_entities]]",
            f"finess_ej = {_s(entity.finess_ej)}",
            f"name = {_s(entity.name)}",
            f"cert_file = {_s(str(creds.cert))}",
            f"key_file = {_s(str(creds.key))}",
        ]
        if creds.p12 is not None and creds.p12_password is not None:
            lines += [f"p12_file = {_s(str(creds.p12))}", f"p12_password = {_s(creds.p12_password)}"]
        for est in entity.establishments:
            lines += [
                "",
                "[[legal_entities.establishments]]",
                f"finess_eg = {_s(est.finess_eg)}",
                f"name = {_s(est.name)}",
                f"is_esat = {'true' if est.is_esat else 'false'}",
            ]
            for unit in est.units:
                lines += [
                    "",
                    "[[legal_entities.establishments.units]]",
                    f"id_unite = {_s(unit.id_unite)}",
                    f"nom_unite = {_s(unit.nom_unite)}",
                    f"categorie_organisation = {_s(unit.categorie_organisation)}",
                    f"mode_prise_charge = {_s(unit.mode_prise_charge)}",
                    f"temporalite_accueil = {_s(unit.temporalite_accueil)}",
                ]
    return "\n".join(lines) + "\n"


def write_dui_config(ctx: SimulatorContext, path: Path | None = None) -> Path:
    """Write ``vtdui.toml`` (default: in the data directory) with owner-only permissions; return its path."""
    target = path or ctx.settings.data_dir / "vtdui.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(render_dui_config(ctx))
    tmp.replace(target)
    return target
