"""The generated snapshot in profiles/terminology holds exactly the brief's codes, and the loader reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vtdui import sdo
from vtdui.profiles import profiles_dir, terminology_resources
from vtdui.terminology import Terminology

REPO = Path(__file__).resolve().parents[2]

# brief §6.1-§6.4
J252 = {"37", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49", "51", "54", "71", "72"}
J253 = {str(c) for c in range(180, 189)}
J251 = {"86", "109", "112", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "124", "127",
        "148", "150", "151", "152", "153", "168", "170", "173", "174"}
J250 = {"84", "85", "87", "88", "89", "91", "92", "93", "95", "98", "100", "109", "112", "124", "125", "126", "127",
        "128", "135", "136", "146", "147", "157", "158", "159", "172", "184", "204", "253"}
A32 = {
    "37": {"112", "124", "173", "174"},
    "41": {"150", "151", "152", "153"},
    "45": {"86", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "124", "127", "148"},
    "46": {"86", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "124", "127", "148"},
    "49": {"100", "109", "112", "124", "173", "174"},
    "51": {"92", "93", "172"},
    "54": {"109", "112", "168", "170"},
    "180": {"95", "98", "100", "109", "112", "124"},
    "181": {"84", "85"},
    "188": {"87", "88", "89", "91", "124", "125", "126", "127", "128", "135", "136", "146", "147", "157", "158",
            "159", "184", "204", "253"},
}


@pytest.fixture(scope="module")
def term() -> Terminology:
    return Terminology.load()


@pytest.mark.parametrize(("canonical", "system", "codes"), [
    (sdo.JDV_J252, sdo.TRE_R357, J252),
    (sdo.JDV_J253, sdo.TRE_R357, J253),
    (sdo.JDV_J251, sdo.TRE_R358, J251),
    (sdo.JDV_J250, sdo.TRE_R358, J250),
    (sdo.JDV_J30, sdo.TRE_R240, {"01", "02"}),
])
def test_valueset_has_exactly_the_brief_codes(term: Terminology, canonical: str, system: str,
                                              codes: set[str]) -> None:
    assert term.valueset_codes(canonical) == frozenset((system, c) for c in codes)


def test_j264_mixes_two_code_systems(term: Terminology) -> None:
    assert term.valueset_codes(sdo.JDV_J264) == frozenset(
        {(sdo.TRE_R213, "46"), (sdo.TRE_R213, "47"), (sdo.TRE_R213, "48"), (sdo.TRE_R397, "238")})


def test_j34_is_tre_r244(term: Terminology) -> None:
    codes = term.valueset_codes(sdo.JDV_J34)
    assert {s for s, _ in codes} == {sdo.TRE_R244}
    assert (sdo.TRE_R244, "01") in codes and (sdo.TRE_R244, "09") in codes


def test_ass_a32_table(term: Terminology) -> None:
    for status, motifs in A32.items():
        assert term.allowed_motifs(status) == frozenset(motifs), status
    assert term.a32_statuses() == frozenset(A32)
    assert term.allowed_motifs("42") == frozenset()


def test_motif_requirement_defaults(term: Terminology) -> None:
    assert {c for c in J252 | J253 if term.status_requires_motif(c) == "error"} == {"45", "46", "180", "181", "188"}
    assert {c for c in J252 | J253 if term.status_requires_motif(c) == "warning"} == {"37", "41", "49", "51", "54"}


def test_displays(term: Terminology) -> None:
    assert term.display(sdo.TRE_R357, "41") == "Contact effectué"
    assert term.display(sdo.TRE_R213, "46") == "Hébergement (accueil jour et nuit)"
    # a JDV designation and the TRE display are both known
    assert term.displays(sdo.TRE_R358, "127") == {"Retraite (ESAT)",
                                                  "L'usager a fait valoir ses droits à la retraite (ESAT)"}
    assert term.display(sdo.TRE_R397, "238") is None  # not verified: none invented
    assert term.contains(sdo.JDV_J252, sdo.TRE_R357, "42")
    assert not term.contains(sdo.JDV_J252, sdo.JDV_J252, "42")
    assert not term.contains("https://example.org/unknown", sdo.TRE_R357, "42")


def test_resources_have_sdo_canonicals_versions_and_content() -> None:
    by_url = {r["url"]: r for r in terminology_resources()}
    expected_vs = {sdo.JDV_J252: "20230922120000", sdo.JDV_J253: "20230922120000", sdo.JDV_J251: "20230922120000",
                   sdo.JDV_J250: "20240126120000", sdo.JDV_J264: "20260730120000", sdo.JDV_J30: "20200424120000",
                   sdo.JDV_J34: "20260629120000"}
    for url, version in expected_vs.items():
        assert by_url[url]["resourceType"] == "ValueSet" and by_url[url]["version"] == version
    assert by_url[sdo.ASS_A32]["resourceType"] == "ConceptMap"
    content = {u: r["content"] for u, r in by_url.items() if r["resourceType"] == "CodeSystem"}
    assert content == {sdo.TRE_R357: "complete", sdo.TRE_R358: "fragment", sdo.TRE_R213: "fragment",
                       sdo.TRE_R240: "fragment", sdo.TRE_R244: "fragment", sdo.TRE_R397: "fragment"}
    for r in by_url.values():  # ids HAPI accepts for PUT
        assert len(r["id"]) <= 64 and all(ch.isalnum() or ch in "-." for ch in r["id"])


def test_snapshot_is_up_to_date_and_deterministic(tmp_path: Path, terminology_source: Path) -> None:
    script = REPO / "profiles" / "build_terminology.py"
    source = ["--source", str(terminology_source)]
    check = subprocess.run([sys.executable, str(script), *source, "--check"], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr
    subprocess.run([sys.executable, str(script), *source, "--out", str(tmp_path)], check=True, capture_output=True)
    for path in (REPO / "profiles" / "terminology").glob("*.json"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_check_detects_a_stale_file(tmp_path: Path, terminology_source: Path) -> None:
    script = REPO / "profiles" / "build_terminology.py"
    source = ["--source", str(terminology_source)]
    subprocess.run([sys.executable, str(script), *source, "--out", str(tmp_path)], check=True, capture_output=True)
    target = next(tmp_path.glob("ValueSet-JDV-J252*.json"))
    data = json.loads(target.read_text(encoding="utf-8"))
    data["version"] = "1"
    target.write_text(json.dumps(data), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), *source, "--check", "--out", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "JDV-J252" in done.stderr


def test_profiles_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vtdui.errors import ConfigError
    monkeypatch.setenv("VTDUI_PROFILES_DIR", str(tmp_path))
    assert profiles_dir() == tmp_path
    monkeypatch.setenv("VTDUI_PROFILES_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="VTDUI_PROFILES_DIR"):
        profiles_dir()


def test_script_without_a_source_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VTDUI_TERMINOLOGY_SOURCE", raising=False)
    script = REPO / "profiles" / "build_terminology.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "--source" in done.stderr and "VTDUI_TERMINOLOGY_SOURCE" in done.stderr
    assert "Traceback" not in done.stderr
