"""``vtdui setup``: install into HAPI what vtdui needs; running it again changes nothing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from vtdui.config import load_config
from vtdui.errors import ConfigError
from vtdui.ig_package import (
    DEFAULT_REGISTRY,
    IgPackage,
    fetch_ig_package,
    install_ig_package,
    load_ig_package,
)
from vtdui.logs import setup_logging
from vtdui.profiles import install_terminology
from vtdui.receiver import disable_subscriptions, hook_endpoint, install_subscriptions
from vtdui.runtime import Runtime

__all__ = ["setup"]


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--endpoint", default=None,
              help="URL HAPI calls for REST hooks (default: receiver.public_url, else http://receiver.host:port"
                   "/vtdui/hook).")
@click.option("--no-terminology", is_flag=True, help="Do not install the NOS terminology snapshot.")
@click.option("--ig-package", "ig_package", type=click.Path(exists=True, path_type=Path), default=None,
              help="The official IG package ans.fhir.fr.sdo 4.0.7 (.tgz as published, or a folder of its "
                   "resources) to install into HAPI for $validate.")
@click.option("--ig-from-registry", is_flag=True,
              help="Download that package by name and version from the FHIR package registry instead.")
@click.option("--registry", default=DEFAULT_REGISTRY, show_default=True, help="FHIR package registry base URL.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for HAPI to activate the Subscriptions.")
@click.option("--off", "turn_off", is_flag=True,
              help="Turn vtdui's Subscriptions off instead (HAPI stops delivering; the reconciliation still "
                   "finds the changes while `vtdui run` runs). Running setup again turns them back on.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def setup(config_path: Path | None, endpoint: str | None, no_terminology: bool, ig_package: Path | None,
          ig_from_registry: bool, registry: str, timeout: float, turn_off: bool, as_json: bool) -> None:
    """Install the REST-hook Subscriptions, the terminology and the IG into HAPI; start the reconciliation cursors.

    The Subscriptions (profiles/subscriptions) send work-list Task and active Consent changes to the
    receiver of `vtdui run` with the receiver.secret header; the terminology (profiles/terminology) gives
    HAPI the NOS CodeSystems, JDV ValueSets and ASS_A32 for $validate and $expand; the official IG package
    (--ig-package or --ig-from-registry) gives it the IG's StructureDefinitions, CodeSystem and ValueSet, so
    that $validate against ESMSTask / ESMSConsent works; the reconciliation cursors make changes from now on
    found even while `vtdui run` is not running.
    """
    if ig_package is not None and ig_from_registry:
        raise click.UsageError("give either --ig-package or --ig-from-registry, not both")
    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    if turn_off:
        with Runtime(config) as runtime:
            changed = disable_subscriptions(runtime.store)
        click.echo(json.dumps({"off": changed}) if as_json else
                   f"Subscriptions turned off: {', '.join(changed) or 'none (already off or not installed)'}")
        return
    secret = config.receiver.secret
    if not secret:
        raise ConfigError("receiver.secret is empty: set a long random value (receiver.secret = "
                          "\"env:VTDUI_RECEIVER_SECRET\"); HAPI sends it to the receiver in every delivery")
    target = endpoint or hook_endpoint(config.receiver.host, config.receiver.port, config.receiver.public_url)
    # The package is read (and checked) before HAPI is touched: a wrong one changes nothing there.
    package: IgPackage | None = None
    if ig_package is not None:
        package = load_ig_package(ig_package)
    elif ig_from_registry:
        with tempfile.TemporaryDirectory(prefix="vtdui-ig-") as tmp:
            package = fetch_ig_package(Path(tmp), registry)  # read into memory: the file may go
    done: dict[str, Any] = {"endpoint": target}
    with Runtime(config) as runtime:
        subscriptions = install_subscriptions(runtime.store, target, secret, timeout=timeout)
        done["subscriptions"] = [{"id": s.id, "criteria": s.criteria, "status": s.status, "changed": s.changed}
                                 for s in subscriptions]
        # vtdui tells its own writes by the request id HAPI stores in meta.source (vtdui.changes.is_own_write)
        done["request_ids_kept"] = (runtime.store.check_request_ids("Subscription", subscriptions[0].id)
                                    if subscriptions else None)
        if not no_terminology:
            report = install_terminology(config.hapi.base_url)
            done["terminology"] = {"created": report.created, "updated": report.updated,
                                   "unchanged": len(report.unchanged)}
        if package is not None:
            report = install_ig_package(config.hapi.base_url, package)
            done["ig"] = {"source": str(ig_package) if ig_package is not None else registry,
                          "version": package.version, "created": report.created, "updated": report.updated,
                          "unchanged": len(report.unchanged)}
        done["reconciliation_cursors_started"] = runtime.reconciler.start_cursors()
    if as_json:
        click.echo(json.dumps(done, indent=2))
        return
    click.echo(f"HAPI {config.hapi.base_url}")
    for sub in done["subscriptions"]:
        click.echo(f"  Subscription/{sub['id']} {sub['status']} ({'installed' if sub['changed'] else 'unchanged'})"
                   f": {sub['criteria']} -> {target}")
    if "terminology" in done:
        term = done["terminology"]
        click.echo(f"  terminology: {len(term['created'])} created, {len(term['updated'])} updated, "
                   f"{term['unchanged']} unchanged")
    if "ig" in done:
        ig = done["ig"]
        click.echo(f"  IG ans.fhir.fr.sdo {ig['version']} from {ig['source']}: {len(ig['created'])} created, "
                   f"{len(ig['updated'])} updated, {ig['unchanged']} unchanged")
    else:
        click.echo("  IG profiles: not installed (--ig-package FILE, or --ig-from-registry): HAPI's $validate "
                   "against ESMSTask / ESMSConsent needs them")
    if done["request_ids_kept"] is False:
        click.echo("  warning: HAPI does not store request ids in meta.source (store_meta_source_information): "
                   "vtdui tells its own writes by their content only; see docker/README.md", err=True)
    started = done["reconciliation_cursors_started"]
    click.echo("  reconciliation cursors: " + (f"started for {', '.join(started)}" if started else "already set"))
    click.echo("Next: `vtdui run` (it must listen where the Subscriptions point).")
