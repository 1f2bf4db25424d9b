"""The official IG package ``ans.fhir.fr.sdo`` 4.0.7, read from where the operator keeps it.

The IG's StructureDefinitions, CodeSystem and ValueSet are the ANS's publication: vtdui does not ship them.
They are read from an explicit source, given on the command line (``vtdui setup --ig-package``; the test
suite's ``--ig-package`` / ``VTDUI_IG_PACKAGE``):

* the official package file as published on the FHIR package registry (``package.tgz``: a gzipped tar with
  the resources under ``package/``), or
* a folder holding that package unpacked (``package/`` inside it, or the resources directly).

Only the top-level conformance resources are read (examples under ``package/example/`` are not), and a
package that is not ``ans.fhir.fr.sdo`` 4.0.7 is refused: installing another version would make HAPI's
``$validate`` check against profiles vtdui was not written for.

:func:`fetch_ig_package` downloads the package file by name and version from a FHIR package registry
(``https://packages.fhir.org`` by default) where the host reaches one; :func:`install_ig_package` puts its
StructureDefinitions, CodeSystem and ValueSet into HAPI (``vtdui setup``), so that HAPI's ``$validate``
knows the IG's profiles.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from vtdui import sdo
from vtdui.errors import ConfigError
from vtdui.profiles import InstallReport, install_resources

__all__ = [
    "CONFORMANCE_TYPES",
    "DEFAULT_REGISTRY",
    "IG_PACKAGE_NAME",
    "IG_TAG",
    "IgPackage",
    "fetch_ig_package",
    "install_ig_package",
    "load_ig_package",
]

#: Name of the IG's package on the FHIR package registry.
IG_PACKAGE_NAME: Final = "ans.fhir.fr.sdo"

#: Resource types of the package that HAPI needs for ``$validate`` (examples and the IG resource are not).
CONFORMANCE_TYPES: Final = frozenset({"StructureDefinition", "CodeSystem", "ValueSet", "ConceptMap",
                                      "NamingSystem", "SearchParameter"})

#: The FHIR package registry queried by name and version.
DEFAULT_REGISTRY: Final = "https://packages.fhir.org"

#: ``meta.tag`` put on every IG resource vtdui installs into HAPI (clean-up by tag).
IG_TAG: Final = {"system": "urn:vtdui:fhir:tag", "code": "official-ig"}

#: Install order: code systems before the value sets that include them (HAPI expands a ValueSet with what
#: it knows when it is stored), profiles last.
_INSTALL_ORDER: Final = ("CodeSystem", "ValueSet", "ConceptMap", "NamingSystem", "SearchParameter",
                         "StructureDefinition")

#: Largest package file accepted from a registry (the IG's package is well under this).
_MAX_PACKAGE_BYTES: Final = 100 * 1024 * 1024

#: Upper bound of one JSON member of a package file: the IG's largest resource is well under 1 MB.
_MAX_MEMBER_BYTES: Final = 20 * 1024 * 1024

#: Files of an npm-style FHIR package that are not resources.
_NOT_RESOURCES: Final = frozenset({"package.json", ".index.json"})


@dataclass(frozen=True)
class IgPackage:
    """The official IG's conformance resources, by file name.

    Attributes:
        source: the package file or folder they were read from.
        resources: each conformance resource, keyed by its file name in the package
            (e.g. ``StructureDefinition-esms-task.json``), in file-name order.
        version: the package's version (``package.json``), or the StructureDefinitions' when there is none.
    """

    source: Path
    resources: dict[str, dict[str, Any]]
    version: str

    def resource(self, file_name: str) -> dict[str, Any]:
        """Return the resource published under ``file_name``.

        Raises:
            ConfigError: the package has no such file.
        """
        try:
            return self.resources[file_name]
        except KeyError:
            raise ConfigError(f"the official IG package {self.source} has no {file_name}") from None

    def conformance_resources(self) -> list[dict[str, Any]]:
        """Return the resources HAPI needs for ``$validate`` (StructureDefinitions, CodeSystems, ValueSets ...)."""
        return [r for r in self.resources.values() if r.get("resourceType") in CONFORMANCE_TYPES]


def load_ig_package(source: Path) -> IgPackage:
    """Read the official IG package from a ``.tgz`` file or a folder.

    Args:
        source: the package file, or a folder with the package unpacked (``package/`` in it or the resources).

    Raises:
        ConfigError: the source does not exist, cannot be read, holds no StructureDefinition, or is another IG
            or another version than ``ans.fhir.fr.sdo`` 4.0.7.
    """
    if source.is_dir():
        manifest, files = _read_folder(source / "package" if (source / "package").is_dir() else source)
    elif source.is_file():
        manifest, files = _read_tarball(source)
    else:
        raise ConfigError(f"official IG package {source} not found: give the package file ({IG_PACKAGE_NAME} "
                          f"{sdo.IG_VERSION}, .tgz) or a folder of its resources")
    resources: dict[str, dict[str, Any]] = {}
    for name, raw in sorted(files.items()):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {name} is not JSON ({exc})") from exc
        if isinstance(data, dict) and "resourceType" in data and "id" in data:
            resources[name] = data
    return IgPackage(source=source, resources=resources, version=_check_identity(source, manifest, resources))


def _read_folder(folder: Path) -> tuple[dict[str, Any] | None, dict[str, bytes]]:
    files: dict[str, bytes] = {}
    manifest: dict[str, Any] | None = None
    try:
        for path in sorted(folder.glob("*.json")):
            if path.name == "package.json":
                manifest = _manifest(folder, path.read_bytes())
            elif path.name not in _NOT_RESOURCES:
                files[path.name] = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the official IG package folder {folder}: {exc}") from exc
    return manifest, files


def _read_tarball(path: Path) -> tuple[dict[str, Any] | None, dict[str, bytes]]:
    files: dict[str, bytes] = {}
    manifest: dict[str, Any] | None = None
    try:
        # Members are read in memory, never extracted: a hostile archive cannot write anywhere.
        with tarfile.open(path, "r:*") as archive:
            for member in archive.getmembers():
                parts = member.name.lstrip("./").split("/")
                if not member.isfile() or len(parts) != 2 or parts[0] != "package" or not parts[1].endswith(".json"):
                    continue
                if member.size > _MAX_MEMBER_BYTES:
                    raise ConfigError(f"{path}: {member.name} is larger than {_MAX_MEMBER_BYTES} bytes")
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                raw = handle.read()
                if parts[1] == "package.json":
                    manifest = _manifest(path, raw)
                elif parts[1] not in _NOT_RESOURCES:
                    files[parts[1]] = raw
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ConfigError(f"cannot read the official IG package file {path}: {exc}") from exc
    return manifest, files


def _manifest(where: Path, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: package.json is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: package.json is not a JSON object")
    return data


def _check_identity(source: Path, manifest: dict[str, Any] | None, resources: dict[str, dict[str, Any]]) -> str:
    profiles = [r for r in resources.values() if r.get("resourceType") == "StructureDefinition"]
    if not profiles:
        raise ConfigError(f"{source} holds no StructureDefinition: it is not the official IG package "
                          f"{IG_PACKAGE_NAME} {sdo.IG_VERSION}")
    if manifest is not None:
        name, version = manifest.get("name"), manifest.get("version")
        if (name, version) != (IG_PACKAGE_NAME, sdo.IG_VERSION):
            raise ConfigError(f"{source} is the package {name} {version}; vtdui needs {IG_PACKAGE_NAME} "
                              f"{sdo.IG_VERSION}")
        return str(version)
    # A folder of resources without package.json: every IG profile must carry the IG's version.
    versions = {str(r.get("version")) for r in profiles if str(r.get("url", "")).startswith(sdo.IG_BASE)}
    if versions != {sdo.IG_VERSION}:
        found = ", ".join(sorted(versions)) or "none of the IG's canonical base"
        raise ConfigError(f"{source}: the StructureDefinitions are not those of {IG_PACKAGE_NAME} "
                          f"{sdo.IG_VERSION} (versions: {found})")
    return sdo.IG_VERSION


def fetch_ig_package(directory: Path, registry: str = DEFAULT_REGISTRY, *,
                     client: httpx.Client | None = None, timeout: float = 60.0) -> IgPackage:
    """Download ``ans.fhir.fr.sdo`` 4.0.7 from a FHIR package registry into ``directory`` and read it.

    Args:
        directory: where the package file is written (``ans.fhir.fr.sdo-4.0.7.tgz``).
        registry: base URL of the registry (``GET {registry}/{name}/{version}`` answers the package file).
        client: the HTTP client to use (a new one is made, and closed, otherwise).
        timeout: seconds for the download.

    Raises:
        ConfigError: the registry cannot be reached or does not serve the package (the message says to give the
            package file instead), or what it served is not the package.
    """
    url = f"{registry.rstrip('/')}/{IG_PACKAGE_NAME}/{sdo.IG_VERSION}"
    own = client is None
    http = client if client is not None else httpx.Client(timeout=timeout, follow_redirects=True)
    hint = "download the package file elsewhere and give it with --ig-package"
    target = directory / f"{IG_PACKAGE_NAME}-{sdo.IG_VERSION}.tgz"
    try:
        with http.stream("GET", url, headers={"Accept": "application/gzip, application/octet-stream"}) as response:
            if response.status_code != 200:
                raise ConfigError(f"the FHIR package registry answered HTTP {response.status_code} for {url}; {hint}")
            size = 0
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > _MAX_PACKAGE_BYTES:
                        raise ConfigError(f"{url} sent more than {_MAX_PACKAGE_BYTES} bytes; {hint}")
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot download {url} from the FHIR package registry ({exc}); {hint}") from None
    finally:
        if own:
            http.close()
    return load_ig_package(target)


def install_ig_package(hapi_base_url: str, package: IgPackage, client: httpx.Client | None = None) -> InstallReport:
    """PUT the package's conformance resources into HAPI by id (tagged :data:`IG_TAG`); unchanged ones are kept.

    Args:
        hapi_base_url: FHIR base of the HAPI server.
        package: the official IG package (:func:`load_ig_package`).
        client: the HTTP client to use (a new one is made, and closed, otherwise).

    Raises:
        HapiError: HAPI could not be reached or refused a resource.
    """
    rank = {name: i for i, name in enumerate(_INSTALL_ORDER)}
    items = sorted(package.conformance_resources(), key=lambda r: rank.get(str(r["resourceType"]), len(rank)))
    return install_resources(hapi_base_url, items, tag=IG_TAG, client=client)
