"""Every health check of the Docker stack only runs what its image contains (no Docker engine needed).

No Docker engine runs where these tests run, so a health check that calls a tool the image lacks would only
show on a machine with Docker, as "never healthy". Instead, what each pinned image ships is recorded here as
facts, taken from the Dockerfiles the images are published from (see docker/README.md), and each check of
``docker/compose.yaml`` and of ``docker/vtdui.Dockerfile`` is held against them. Moving an image to another
version fails :func:`test_every_image_has_recorded_facts` until its facts are checked and recorded.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "compose.yaml"
VTDUI_DOCKERFILE = DOCKER / "vtdui.Dockerfile"


@dataclass(frozen=True)
class ImageFacts:
    """What an image version contains, as far as a health check cares.

    Attributes:
        source: where the facts come from.
        executables: programs on the image's PATH.
        shell: whether ``/bin/sh`` exists (``CMD-SHELL`` checks need it).
        java_classes: for ``java -cp DIR CLASS`` checks: the classes found directly in each directory.
    """

    source: str
    executables: frozenset[str]
    shell: bool
    java_classes: dict[str, frozenset[str]] = field(default_factory=dict)


# Debian 12 slim with CPython from the official python image; vtdui's wheel adds its console script.
_PYTHON_SLIM = frozenset({"python", "python3", "pip", "sh", "bash", "cat", "ls", "vtdui"})

IMAGES: dict[str, ImageFacts] = {
    # The HAPI JPA starter's image: its default stage is FROM gcr.io/distroless/java17-debian12:nonroot with
    # /app/main.war (+ the OpenTelemetry agent jar); distroless holds the JRE's `java` and nothing else (no
    # shell, curl or wget; a JRE, so no compiler for `java File.java`). The starter added a HealthCheck class
    # to /app only in v8.10.0-1.
    "hapiproject/hapi:v8.8.0-1": ImageFacts(
        source="hapi-fhir-jpaserver-starter Dockerfile at image-v8.8.0-1 (distroless java17-debian12)",
        executables=frozenset({"java"}), shell=False, java_classes={"/app": frozenset()}),
    # Alpine with curl built in; BusyBox gives the shell and the usual utilities (sleep for the idle loop).
    "curlimages/curl:8.11.1": ImageFacts(
        source="curl-container Dockerfile (alpine, curl, busybox)",
        executables=frozenset({"curl", "sh", "sleep", "wget", "cat", "ls"}), shell=True),
    # Built from docker/vtdui.Dockerfile (its FROM line is checked below).
    "vtdui:local": ImageFacts(source="docker/vtdui.Dockerfile FROM python:3.11-slim-bookworm",
                              executables=_PYTHON_SLIM, shell=True),
}
VTDUI_BASE = "python:3.11-slim-bookworm"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def problems(test: list[str] | str, facts: ImageFacts) -> list[str]:
    """Why a health check's command cannot run in an image with these facts (empty: it can)."""
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    kind, args = test[0], list(test[1:])
    if kind == "NONE":
        return []
    if kind == "CMD-SHELL":
        if not facts.shell:
            return ["CMD-SHELL needs /bin/sh, which the image lacks"]
        args = shlex.split(" ".join(args))
    elif kind != "CMD":
        return [f"unknown healthcheck form {kind}"]
    if not args:
        return ["empty command"]
    found: list[str] = []
    program = args[0].rsplit("/", 1)[-1]
    if program not in facts.executables:
        found.append(f"{program} is not in the image ({facts.source})")
    if program == "java" and ("-cp" in args or "--class-path" in args):
        option = "-cp" if "-cp" in args else "--class-path"
        directory, main_class = args[args.index(option) + 1], args[args.index(option) + 2]
        classes = facts.java_classes.get(directory)
        if classes is None or main_class not in classes:
            found.append(f"class {main_class} is not in {directory} of the image ({facts.source})")
    return found


def _healthchecks() -> list[tuple[str, str, Any]]:
    out = []
    for name, service in _compose()["services"].items():
        image = service.get("image")
        if "healthcheck" in service:
            out.append((name, image, service["healthcheck"]["test"]))
    return out


def test_every_image_has_recorded_facts() -> None:
    images = {s.get("image") for s in _compose()["services"].values()}
    assert images <= set(IMAGES), f"record what {images - set(IMAGES)} contains before using it"
    assert re.search(rf"^FROM {re.escape(VTDUI_BASE)}$", VTDUI_DOCKERFILE.read_text(encoding="utf-8"), re.M)


@pytest.mark.parametrize(("service", "image", "test"), _healthchecks(), ids=[h[0] for h in _healthchecks()])
def test_compose_healthcheck_runs_with_what_the_image_contains(service: str, image: str, test: Any) -> None:
    assert problems(test, IMAGES[image]) == [], service


def test_the_dockerfile_healthcheck_runs_with_what_the_image_contains() -> None:
    text = VTDUI_DOCKERFILE.read_text(encoding="utf-8")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])\s*$", text, re.M | re.S)
    assert match is not None
    command = yaml.safe_load(match.group(1))  # a JSON array
    assert problems(["CMD", *command], IMAGES["vtdui:local"]) == []


def test_hapi_readiness_gates_the_stack() -> None:
    services = _compose()["services"]
    # the probe asks HAPI's FHIR base on the port HAPI listens on inside the network
    [check] = [h for h in _healthchecks() if h[0] == "hapi-health"]
    url = next(a for a in check[2] if a.startswith("http"))
    assert url == "http://hapi:8080/fhir/metadata"
    assert services["hapi"]["ports"][0].endswith(":8080")
    assert services["hapi-health"]["depends_on"]["hapi"]["condition"] == "service_started"
    assert services["vtdui"]["depends_on"] == {"hapi-health": {"condition": "service_healthy"}}
    assert services["vtdui"]["environment"]["FHIR_BASE_URL"] == "http://hapi:8080/fhir"


def test_the_checker_refuses_what_made_hapi_never_healthy() -> None:
    hapi = IMAGES["hapiproject/hapi:v8.8.0-1"]
    assert problems(["CMD", "java", "-cp", "/app", "HealthCheck"], hapi) == [
        "class HealthCheck is not in /app of the image (hapi-fhir-jpaserver-starter Dockerfile at image-v8.8.0-1 "
        "(distroless java17-debian12))"]
    assert problems(["CMD", "curl", "-f", "http://localhost:8080/fhir/metadata"], hapi)
    assert problems("curl -f http://localhost:8080/fhir/metadata || exit 1", hapi)[0].startswith("CMD-SHELL")


def test_compose_mounts_only_files_the_repository_provides() -> None:
    vtdui = _compose()["services"]["vtdui"]
    config_mount = next(v for v in vtdui["volumes"] if v.endswith(":/etc/vtdui/vtdui.toml:ro"))
    default = re.fullmatch(r"\$\{VTDUI_CONFIG_FILE:-(.+?)\}:.*", config_mount)
    assert default is not None
    # ./vtdui.toml is the operator's copy of the template; the template itself is in the repository
    assert default.group(1) == "./vtdui.toml"
    assert (DOCKER / "vtdui.example.toml").is_file()
    build = vtdui["build"]
    assert (COMPOSE.parent / build["context"] / ".dockerignore").is_file()


def _copied_sources() -> set[str]:
    text = VTDUI_DOCKERFILE.read_text(encoding="utf-8")
    copied: set[str] = set()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        copied.update(line.split()[:-1])
    return copied


def test_the_image_installs_the_postgres_extra_from_a_complete_source_tree() -> None:
    text = VTDUI_DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"pip install '\.\[postgres\]'", text)
    # setup.py copies these into the wheel and stops the build when one is missing
    assert {"pyproject.toml", "setup.py", "MANIFEST.in", "LICENSE", "plugin", "profiles",
            "docker/hapi-launcher"} <= _copied_sources()
    assert "VTDUI_PROFILES_DIR" not in text  # the wheel carries profiles/ itself


def test_dockerignore_keeps_out_state_and_secrets_but_not_what_the_image_copies() -> None:
    ignored = [line.strip() for line in (DOCKER.parent / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".git", ".venv", "docker/vtdui.toml", "**/*.p12"} <= set(ignored)
    for source in _copied_sources():
        assert not any(source == pattern or source.startswith(pattern.rstrip("/") + "/") for pattern in ignored)
