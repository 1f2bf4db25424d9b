"""The FHIR conformance resources vtdui ships in ``profiles/`` and installs into HAPI.

``profiles/terminology/`` holds the NOS terminology snapshot (CodeSystems, JDV ValueSets, the
ConceptMap ASS_A32) written by ``profiles/build_terminology.py``. :func:`install_terminology` puts
each resource into a HAPI FHIR server under its own id, so that HAPI's ``$validate`` and
``$expand`` know the codes the IG binds to. Installing twice changes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from vtdui.bundled import bundled_path
from vtdui.errors import ConfigError, HapiError

__all__ = [
    "ENV_PROFILES_DIR",
    "SNAPSHOT_TAG",
    "InstallReport",
    "install_resources",
    "install_terminology",
    "profiles_dir",
    "terminology_dir",
    "terminology_resources",
]

#: Environment variable that points vtdui to another ``profiles/`` directory.
ENV_PROFILES_DIR: Final = "VTDUI_PROFILES_DIR"

#: ``meta.tag`` put on every resource vtdui installs from its snapshot (clean-up by tag).
SNAPSHOT_TAG: Final = {"system": "urn:vtdui:fhir:tag", "code": "terminology-snapshot"}

_FHIR_JSON: Final = "application/fhir+json"


def profiles_dir() -> Path:
    """Return the ``profiles/`` directory: ``$VTDUI_PROFILES_DIR``, else the one shipped with vtdui.

    The shipped one is the package's copy in an installed wheel, the checkout's ``profiles/`` in an editable
    install (see :mod:`vtdui.bundled`).

    Raises:
        ConfigError: the directory does not exist.
    """
    env = os.environ.get(ENV_PROFILES_DIR)
    path = Path(env) if env else bundled_path("profiles")
    if path is None or not path.is_dir():
        where = f"${ENV_PROFILES_DIR}={env}" if env else "this installation (vtdui/_bundled/profiles)"
        raise ConfigError(f"profiles directory not found in {where}; set {ENV_PROFILES_DIR} to a vtdui "
                          "profiles/ directory or reinstall vtdui")
    return path


def terminology_dir() -> Path:
    """Return ``profiles/terminology``, the shipped terminology snapshot."""
    return profiles_dir() / "terminology"


def terminology_resources(directory: Path | None = None) -> list[dict[str, Any]]:
    """Load every resource of the terminology snapshot, sorted by file name.

    Args:
        directory: a snapshot directory; defaults to ``profiles/terminology``.

    Raises:
        ConfigError: a file is not a FHIR JSON resource.
    """
    directory = directory if directory is not None else terminology_dir()
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read terminology resource {path}: {exc}") from exc
        if not isinstance(resource, dict) or "resourceType" not in resource or "id" not in resource:
            raise ConfigError(f"{path} is not a FHIR resource with resourceType and id")
        out.append(resource)
    return out


@dataclass
class InstallReport:
    """What :func:`install_terminology` did, as ``Type/id`` references."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    """The part of a resource that says whether it changed (server bookkeeping removed)."""
    return {k: v for k, v in resource.items() if k not in ("meta", "text")}


def install_terminology(
    hapi_base_url: str,
    client: httpx.Client | None = None,
    *,
    resources: list[dict[str, Any]] | None = None,
) -> InstallReport:
    """PUT each snapshot resource into HAPI by id; unchanged ones are not written again.

    Args:
        hapi_base_url: FHIR base of the HAPI server, e.g. ``http://127.0.0.1:8080/fhir``.
        client: the HTTP client to use (a new one is made, and closed, otherwise).
        resources: what to install; defaults to :func:`terminology_resources`.

    Returns:
        The references created, updated and left unchanged.

    Raises:
        HapiError: HAPI could not be reached or refused a resource.
    """
    items = resources if resources is not None else terminology_resources()
    return install_resources(hapi_base_url, items, tag=SNAPSHOT_TAG, client=client)


def install_resources(
    hapi_base_url: str,
    items: list[dict[str, Any]],
    *,
    tag: dict[str, str],
    client: httpx.Client | None = None,
) -> InstallReport:
    """PUT each resource into HAPI under its own id, tagged with ``tag``; unchanged ones are not written again.

    Args:
        hapi_base_url: FHIR base of the HAPI server.
        items: FHIR resources with ``resourceType`` and ``id``, installed in this order.
        tag: the ``meta.tag`` coding that says who installed them (clean-up by tag).
        client: the HTTP client to use (a new one is made, and closed, otherwise).

    Returns:
        The references created, updated and left unchanged.

    Raises:
        HapiError: HAPI could not be reached or refused a resource.
    """
    base = hapi_base_url.rstrip("/")
    own = client is None
    http = client if client is not None else httpx.Client(timeout=60.0)
    report = InstallReport()
    try:
        for resource in items:
            ref = f"{resource['resourceType']}/{resource['id']}"
            current = _read(http, f"{base}/{ref}", ref)
            if current is not None and _content(current) == _content(resource):
                report.unchanged.append(ref)
                continue
            body = dict(resource)
            body["meta"] = {**resource.get("meta", {}), "tag": [tag]}
            try:
                response = http.put(
                    f"{base}/{ref}",
                    content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                    headers={"Content-Type": f"{_FHIR_JSON}; charset=utf-8", "Accept": _FHIR_JSON},
                )
            except httpx.HTTPError as exc:
                raise HapiError(f"cannot PUT {ref} to {base}: {exc}") from exc
            if response.status_code >= 400:
                raise HapiError(
                    f"HAPI refused {ref} (HTTP {response.status_code})",
                    status=response.status_code, outcome=_outcome(response),
                )
            (report.created if current is None else report.updated).append(ref)
    finally:
        if own:
            http.close()
    return report


def _read(http: httpx.Client, url: str, ref: str) -> dict[str, Any] | None:
    try:
        response = http.get(url, headers={"Accept": _FHIR_JSON})
    except httpx.HTTPError as exc:
        raise HapiError(f"cannot read {ref} from HAPI: {exc}") from exc
    if response.status_code in (404, 410):
        return None
    if response.status_code >= 400:
        raise HapiError(f"HAPI answered HTTP {response.status_code} reading {ref}",
                        status=response.status_code, outcome=_outcome(response))
    data = response.json()
    return data if isinstance(data, dict) else None


def _outcome(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome" else None
