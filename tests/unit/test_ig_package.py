"""vtdui.ig_package reads the official IG package from a .tgz or a folder, and refuses anything else."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from vtdui import sdo
from vtdui.errors import ConfigError
from vtdui.ig_package import IgPackage, fetch_ig_package, load_ig_package

MANIFEST = {"name": "ans.fhir.fr.sdo", "version": sdo.IG_VERSION, "fhirVersions": ["4.0.1"]}


def _profile(name: str, version: str = sdo.IG_VERSION) -> dict[str, Any]:
    # a minimal StructureDefinition written for the test (not the ANS's text)
    return {"resourceType": "StructureDefinition", "id": name, "url": f"{sdo.IG_BASE}/StructureDefinition/{name}",
            "version": version, "status": "active", "kind": "resource", "abstract": False, "type": "Task"}


def _members(manifest: dict[str, Any] | None = MANIFEST) -> dict[str, Any]:
    members: dict[str, Any] = {
        "package/StructureDefinition-esms-task.json": _profile("esms-task"),
        "package/CodeSystem-input-task-sdo-codesystem.json": {"resourceType": "CodeSystem", "id": "cs",
                                                               "url": f"{sdo.IG_BASE}/CodeSystem/cs"},
        "package/ImplementationGuide-ans.fhir.fr.sdo.json": {"resourceType": "ImplementationGuide", "id": "ig"},
        "package/.index.json": {"index-version": 1, "files": []},
        "package/example/Task-exemple-esms-task.json": {"resourceType": "Task", "id": "exemple-esms-task"},
        "package/other/README.md": "not JSON",
    }
    if manifest is not None:
        members["package/package.json"] = manifest
    return members


def _tgz(path: Path, members: dict[str, Any]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            raw = content.encode() if isinstance(content, str) else json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path


def _folder(root: Path, members: dict[str, Any]) -> Path:
    for name, content in members.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return root


def _check(package: IgPackage) -> None:
    assert package.version == sdo.IG_VERSION
    # top-level resources only: the example under package/example/ is not read, .index.json is no resource
    assert sorted(package.resources) == ["CodeSystem-input-task-sdo-codesystem.json",
                                         "ImplementationGuide-ans.fhir.fr.sdo.json",
                                         "StructureDefinition-esms-task.json"]
    assert [r["resourceType"] for r in package.conformance_resources()] == ["CodeSystem", "StructureDefinition"]
    assert package.resource("StructureDefinition-esms-task.json")["id"] == "esms-task"


def test_package_file(tmp_path: Path) -> None:
    _check(load_ig_package(_tgz(tmp_path / "package.tgz", _members())))


def test_unpacked_package_folder_and_its_package_subfolder(tmp_path: Path) -> None:
    root = _folder(tmp_path / "unpacked", _members())
    _check(load_ig_package(root))
    _check(load_ig_package(root / "package"))


def test_folder_of_resources_without_manifest_checks_the_profiles_version(tmp_path: Path) -> None:
    members = {k: v for k, v in _members(None).items()}
    _check(load_ig_package(_folder(tmp_path / "a", members)))
    members["package/StructureDefinition-esms-task.json"] = _profile("esms-task", "4.0.6")
    with pytest.raises(ConfigError, match=r"4\.0\.6"):
        load_ig_package(_folder(tmp_path / "b", members))


@pytest.mark.parametrize("manifest", [{"name": "ans.fhir.fr.sdo", "version": "4.0.6"},
                                      {"name": "hl7.fhir.fr.core", "version": sdo.IG_VERSION}])
def test_another_package_or_version_is_refused(tmp_path: Path, manifest: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=f"vtdui needs ans.fhir.fr.sdo {sdo.IG_VERSION}"):
        load_ig_package(_tgz(tmp_path / "p.tgz", _members(manifest)))


def test_missing_broken_or_empty_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_ig_package(tmp_path / "absent.tgz")
    (tmp_path / "garbage.tgz").write_bytes(b"not a tar file")
    with pytest.raises(ConfigError, match="cannot read"):
        load_ig_package(tmp_path / "garbage.tgz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no StructureDefinition"):
        load_ig_package(tmp_path / "empty")
    broken = _members()
    broken["package/StructureDefinition-esms-task.json"] = "{not json"
    with pytest.raises(ConfigError, match=r"StructureDefinition-esms-task\.json is not JSON"):
        load_ig_package(_tgz(tmp_path / "broken.tgz", broken))


def test_members_outside_package_are_never_extracted(tmp_path: Path) -> None:
    members = _members()
    members["../escape.json"] = _profile("escape")
    members["/abs/escape.json"] = _profile("escape")
    package = load_ig_package(_tgz(tmp_path / "p.tgz", members))
    assert "escape.json" not in package.resources
    assert not (tmp_path.parent / "escape.json").exists()


def test_the_official_resources_read_the_same_from_a_package_file(tmp_path: Path, official_ig: IgPackage) -> None:
    members: dict[str, Any] = {f"package/{name}": r for name, r in official_ig.resources.items()}
    members["package/package.json"] = MANIFEST
    repacked = load_ig_package(_tgz(tmp_path / "package.tgz", members))
    assert repacked.resources == official_ig.resources
    assert {r["id"] for r in repacked.conformance_resources()} >= {"esms-task", "esms-consent",
                                                                   "esms-document-reference"}


class _Registry(ThreadingHTTPServer):
    """A FHIR package registry on loopback: ``GET /{name}/{version}`` answers the package file it holds."""

    packages: dict[str, bytes]


class _RegistryHandler(BaseHTTPRequestHandler):
    server: _Registry

    def do_GET(self) -> None:
        body = self.server.packages.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/gzip" if body is not None else "text/plain")
        payload = body if body is not None else b"not found"
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[_Registry]:
    server = _Registry(("127.0.0.1", 0), _RegistryHandler)
    server.packages = {f"/ans.fhir.fr.sdo/{sdo.IG_VERSION}": _tgz(tmp_path / "served.tgz", _members()).read_bytes()}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_from_a_registry_by_name_and_version(registry: _Registry, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{registry.server_address[1]}"
    (tmp_path / "dl").mkdir()
    package = fetch_ig_package(tmp_path / "dl", url)
    _check(package)
    assert package.source == tmp_path / "dl" / f"ans.fhir.fr.sdo-{sdo.IG_VERSION}.tgz"


def test_registry_without_the_package_or_unreachable_says_to_give_the_file(registry: _Registry,
                                                                          tmp_path: Path) -> None:
    registry.packages.clear()
    url = f"http://127.0.0.1:{registry.server_address[1]}"
    with pytest.raises(ConfigError, match=r"HTTP 404 .*give it with --ig-package"):
        fetch_ig_package(tmp_path, url)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(ConfigError, match=r"cannot download .*give it with --ig-package"):
        fetch_ig_package(tmp_path, f"http://127.0.0.1:{closed}")
