"""NOS terminology: the JDV value sets, code systems and ASS_A32 that IG ans.fhir.fr.sdo binds to.

A :class:`Terminology` is read from the snapshot shipped in ``profiles/terminology`` and, when the
caller gives a state directory, from the fresher copies that :func:`update_from_server` wrote there
(those replace the shipped resources with the same canonical URL).

Codes a terminology server dropped from a value set are never deleted from a snapshot: they stay
in the ValueSet ``compose`` with the extension :data:`REMOVED_EXTENSION`, so stored data that still
uses them keeps its display, while :meth:`Terminology.contains` no longer accepts them for sending.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import httpx

from vtdui import sdo
from vtdui.errors import ConfigError, RemoteError, RetriableError
from vtdui.profiles import terminology_dir, terminology_resources

__all__ = [
    "DEFAULT_CANONICALS",
    "MOTIF_MANDATORY_ERROR",
    "MOTIF_MANDATORY_WARNING",
    "REMOVED_EXTENSION",
    "Code",
    "StateTerminology",
    "Terminology",
    "UpdateReport",
    "ValueSetChange",
    "update_from_server",
]

#: A coded value: (system, code).
Code = tuple[str, str]

#: Statuses whose missing motif is an error (brief §6.3 recommendation; configurable).
MOTIF_MANDATORY_ERROR: Final = frozenset({"45", "46", "180", "181", "188"})
#: Statuses whose missing motif is a warning (brief §6.3 recommendation; configurable).
MOTIF_MANDATORY_WARNING: Final = frozenset({"37", "41", "49", "51", "54"})

#: Extension on a ValueSet ``compose.include.concept``: the code left the JDV at this version.
REMOVED_EXTENSION: Final = "urn:vtdui:fhir:extension:removed-from-jdv"

#: What ``vtdui terminology update`` refreshes by default: every JDV the IG binds, and ASS_A32.
DEFAULT_CANONICALS: Final = (
    sdo.JDV_J252, sdo.JDV_J253, sdo.JDV_J251, sdo.JDV_J250, sdo.JDV_J264, sdo.JDV_J30, sdo.JDV_J34,
    sdo.ASS_A32,
)

_SNAPSHOT_SUBDIR: Final = "terminology"
_FHIR_JSON: Final = "application/fhir+json"
_SAFE_ID = re.compile(r"[^A-Za-z0-9\-.]")


@dataclass(frozen=True)
class _ValueSet:
    url: str
    version: str | None
    codes: frozenset[Code]
    removed: frozenset[Code]
    displays: Mapping[Code, str]


def _valueset_from_resource(resource: Mapping[str, Any]) -> _ValueSet:
    codes: set[Code] = set()
    removed: set[Code] = set()
    displays: dict[Code, str] = {}
    for include in resource.get("compose", {}).get("include", []):
        system = include.get("system")
        if not system:
            continue
        for concept in include.get("concept", []):
            key = (system, str(concept["code"]))
            if any(e.get("url") == REMOVED_EXTENSION for e in concept.get("extension", [])):
                removed.add(key)
            else:
                codes.add(key)
            if concept.get("display"):
                displays[key] = concept["display"]
    return _ValueSet(resource["url"], resource.get("version"), frozenset(codes), frozenset(removed - codes),
                     displays)


def _flatten_concepts(concepts: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for concept in concepts:
        yield concept
        yield from _flatten_concepts(concept.get("concept", []))


@dataclass(frozen=True)
class Terminology:
    """Code lists of the JDVs, code-system displays and the ASS_A32 table, read-only.

    Build it with :meth:`load` (snapshot + state dir) or :meth:`from_resources`.

    Attributes:
        motif_error: statuses whose motif is mandatory (missing motif = error).
        motif_warning: statuses whose motif is expected (missing motif = warning).
    """

    _valuesets: Mapping[str, _ValueSet]
    _cs_displays: Mapping[Code, str]
    _cs_content: Mapping[str, str]
    _a32: Mapping[str, frozenset[str]]
    a32_version: str | None = None
    motif_error: frozenset[str] = MOTIF_MANDATORY_ERROR
    motif_warning: frozenset[str] = MOTIF_MANDATORY_WARNING
    sources: tuple[str, ...] = field(default=())

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_resources(
        cls,
        resources: Iterable[Mapping[str, Any]],
        *,
        motif_error: Iterable[str] = MOTIF_MANDATORY_ERROR,
        motif_warning: Iterable[str] = MOTIF_MANDATORY_WARNING,
        sources: tuple[str, ...] = (),
    ) -> Terminology:
        """Build from FHIR CodeSystem, ValueSet and ConceptMap resources (later ones win per URL)."""
        by_url: dict[str, Mapping[str, Any]] = {}
        for resource in resources:
            if resource.get("url"):
                by_url[resource["url"]] = resource
        valuesets: dict[str, _ValueSet] = {}
        cs_displays: dict[Code, str] = {}
        cs_content: dict[str, str] = {}
        a32: dict[str, frozenset[str]] = {}
        a32_version: str | None = None
        for url, resource in by_url.items():
            kind = resource.get("resourceType")
            if kind == "ValueSet":
                valuesets[url] = _valueset_from_resource(resource)
            elif kind == "CodeSystem":
                cs_content[url] = str(resource.get("content", "complete"))
                for concept in _flatten_concepts(resource.get("concept", [])):
                    if concept.get("display"):
                        cs_displays[(url, str(concept["code"]))] = concept["display"]
            elif kind == "ConceptMap" and url == sdo.ASS_A32:
                a32_version = resource.get("version")
                table: dict[str, set[str]] = {}
                for group in resource.get("group", []):
                    for element in group.get("element", []):
                        table.setdefault(str(element["code"]), set()).update(
                            str(t["code"]) for t in element.get("target", []) if "code" in t
                        )
                a32 = {k: frozenset(v) for k, v in table.items()}
        return cls(valuesets, cs_displays, cs_content, a32, a32_version,
                   frozenset(motif_error), frozenset(motif_warning), sources)

    @classmethod
    def load(
        cls,
        directory: Path | None = None,
        *,
        state_dir: Path | None = None,
        motif_error: Iterable[str] = MOTIF_MANDATORY_ERROR,
        motif_warning: Iterable[str] = MOTIF_MANDATORY_WARNING,
    ) -> Terminology:
        """Read the shipped snapshot, then the updated copies in ``state_dir/terminology`` if any.

        Args:
            directory: snapshot directory (default ``profiles/terminology``).
            state_dir: vtdui's state directory, where ``vtdui terminology update`` writes.
            motif_error: statuses whose missing motif is an error.
            motif_warning: statuses whose missing motif is a warning.
        """
        base = directory if directory is not None else terminology_dir()
        resources = terminology_resources(base)
        sources = [str(base)]
        if state_dir is not None and (state_dir / _SNAPSHOT_SUBDIR).is_dir():
            resources += terminology_resources(state_dir / _SNAPSHOT_SUBDIR)
            sources.append(str(state_dir / _SNAPSHOT_SUBDIR))
        return cls.from_resources(resources, motif_error=motif_error, motif_warning=motif_warning,
                                  sources=tuple(sources))

    # -- queries --------------------------------------------------------------------------------

    def valueset_canonicals(self) -> list[str]:
        """Canonical URLs of the value sets known."""
        return sorted(self._valuesets)

    def has_valueset(self, canonical: str) -> bool:
        """Tell whether the value set is in the snapshot."""
        return canonical in self._valuesets

    def valueset_version(self, canonical: str) -> str | None:
        """Version of the value set in the snapshot (``None`` if unknown)."""
        vs = self._valuesets.get(canonical)
        return vs.version if vs else None

    def valueset_codes(self, canonical: str) -> frozenset[Code]:
        """The (system, code) pairs of a value set, without codes removed from it.

        Raises:
            KeyError: the value set is not in the snapshot.
        """
        return self._valuesets[canonical].codes

    def removed_codes(self, canonical: str) -> frozenset[Code]:
        """Codes a terminology server removed from the value set (kept for stored data)."""
        vs = self._valuesets.get(canonical)
        return vs.removed if vs else frozenset()

    def contains(self, valueset_canonical: str, system: str, code: str) -> bool:
        """Tell whether ``system#code`` is in the value set (unknown value set: ``False``)."""
        vs = self._valuesets.get(valueset_canonical)
        return vs is not None and (system, code) in vs.codes

    def system_is_complete(self, system: str) -> bool:
        """Tell whether the snapshot has the whole code system (``content: complete``)."""
        return self._cs_content.get(system) == "complete"

    def display(self, system: str, code: str) -> str | None:
        """Display of a code: the code system's, else the first value set's that lists it."""
        found = self._cs_displays.get((system, code))
        if found:
            return found
        for url in sorted(self._valuesets):
            vs_display = self._valuesets[url].displays.get((system, code))
            if vs_display:
                return vs_display
        return None

    def displays(self, system: str, code: str) -> frozenset[str]:
        """Every display known for a code (code system display and JDV designations)."""
        out = {d for vs in self._valuesets.values() if (d := vs.displays.get((system, code)))}
        if (system, code) in self._cs_displays:
            out.add(self._cs_displays[(system, code)])
        return frozenset(out)

    def allowed_motifs(self, status_code: str) -> frozenset[str]:
        """Motif codes (TRE_R358) ASS_A32 allows for a status (TRE_R357); empty if none."""
        return self._a32.get(status_code, frozenset())

    def a32_statuses(self) -> frozenset[str]:
        """Statuses that have at least one motif in ASS_A32."""
        return frozenset(self._a32)

    def status_requires_motif(self, code: str) -> Literal["error", "warning"] | None:
        """Whether a missing motif for this status is an ``error``, a ``warning`` or fine (``None``)."""
        if code in self.motif_error:
            return "error"
        if code in self.motif_warning:
            return "warning"
        return None


class StateTerminology:
    """The terminology a running vtdui checks with: the shipped snapshot plus ``state_dir/terminology``.

    Re-read when ``vtdui terminology update`` changed a file there, so that an updated JDV is used by
    the next check without a restart (codes newly added to a JDV are then accepted for sending).
    """

    def __init__(self, state_dir: Path) -> None:
        """Watch ``state_dir/terminology``.

        Args:
            state_dir: vtdui's state directory.
        """
        self.state_dir = state_dir
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._loaded: Terminology | None = None

    def _files_stamp(self) -> tuple[tuple[str, int, int], ...]:
        folder = self.state_dir / _SNAPSHOT_SUBDIR
        if not folder.is_dir():
            return ()
        stamps = []
        for path in sorted(folder.glob("*.json")):
            try:
                stat = path.stat()
            except OSError:
                continue  # replaced while listing: the next call sees the new file
            stamps.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def current(self) -> Terminology:
        """The terminology to check with now (read again only when the state dir's files changed)."""
        stamp = self._files_stamp()
        if self._loaded is None or stamp != self._stamp:
            if stamp:
                self._loaded = Terminology.load(state_dir=self.state_dir)
            else:
                from vtdui.conformance import default_terminology  # the shared cached snapshot

                self._loaded = default_terminology()
            self._stamp = stamp
        return self._loaded


# -- update from a terminology server -------------------------------------------------------------


@dataclass
class ValueSetChange:
    """Difference between the local snapshot and the server for one canonical URL."""

    canonical: str
    old_version: str | None
    new_version: str | None
    added: list[Code] = field(default_factory=list)
    removed: list[Code] = field(default_factory=list)
    display_changes: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    error: str | None = None
    written: Path | None = None

    @property
    def changed(self) -> bool:
        """True when version, codes or displays differ."""
        return bool(self.old_version != self.new_version or self.added or self.removed
                    or self.display_changes)

    def summary(self) -> str:
        """One line for a human."""
        if self.error:
            return f"{self.canonical}: ERROR {self.error}"
        if not self.changed:
            return f"{self.canonical}: unchanged (version {self.new_version})"
        parts = [f"version {self.old_version} -> {self.new_version}"]
        if self.added:
            parts.append("added " + ", ".join(f"{c}" for _, c in self.added))
        if self.removed:
            parts.append("removed " + ", ".join(f"{c}" for _, c in self.removed))
        if self.display_changes:
            parts.append(f"{len(self.display_changes)} display change(s)")
        return f"{self.canonical}: " + "; ".join(parts)


@dataclass
class UpdateReport:
    """What :func:`update_from_server` found and wrote."""

    server: str
    fetched_at: str
    changes: list[ValueSetChange] = field(default_factory=list)

    @property
    def errors(self) -> list[ValueSetChange]:
        """Canonicals that could not be refreshed."""
        return [c for c in self.changes if c.error]

    def __str__(self) -> str:
        return "\n".join([f"terminology server {self.server} at {self.fetched_at}"]
                         + [c.summary() for c in self.changes])


def _get_json(client: httpx.Client, url: str, params: Mapping[str, str | int]) -> dict[str, Any]:
    try:
        response = client.get(url, params=dict(params), headers={"Accept": _FHIR_JSON})
    except httpx.HTTPError as exc:
        raise RetriableError(f"terminology server unreachable ({url}): {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise RetriableError(f"terminology server answered HTTP {response.status_code} for {url}",
                             status=response.status_code)
    try:
        data = response.json()
    except ValueError as exc:
        raise RemoteError(f"terminology server sent non-JSON for {url} (HTTP {response.status_code})",
                          status=response.status_code) from exc
    if response.status_code >= 400:
        raise RemoteError(f"terminology server refused {url} (HTTP {response.status_code})",
                          status=response.status_code, outcome=data if isinstance(data, dict) else None)
    if not isinstance(data, dict):
        raise RemoteError(f"terminology server sent a non-resource for {url}")
    return data


def _search_one(client: httpx.Client, base: str, kind: str, canonical: str) -> dict[str, Any] | None:
    """The newest resource of that kind with that canonical URL, or ``None``."""
    bundle = _get_json(client, f"{base}/{kind}", {"url": canonical})
    found: list[dict[str, Any]] = [
        e["resource"] for e in bundle.get("entry", [])
        if isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == kind
        and e["resource"].get("url") == canonical
    ]
    if not found:
        return None
    # NOS versions are yyyyMMddHHmmss: a string comparison orders them
    return max(found, key=lambda r: str(r.get("version", "")))


def _expand(client: httpx.Client, base: str, canonical: str, version: str | None,
            page_size: int) -> list[dict[str, Any]]:
    """All ``expansion.contains`` entries of a value set, following ``offset`` paging."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        params: dict[str, str | int] = {"url": canonical, "count": page_size, "offset": offset}
        if version:
            params["valueSetVersion"] = version
        expanded = _get_json(client, f"{base}/ValueSet/$expand", params)
        expansion = expanded.get("expansion", {})
        page = list(_flatten_contains(expansion.get("contains", [])))
        out.extend(page)
        total = expansion.get("total")
        offset += len(page)
        if not page or (isinstance(total, int) and offset >= total) or (total is None and len(page) < page_size):
            return out


def _flatten_contains(contains: Iterable[Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
    for entry in contains:
        if entry.get("code") and entry.get("system") and not entry.get("abstract"):
            yield dict(entry)
        yield from _flatten_contains(entry.get("contains", []))


def _local_resource(directory: Path, state_dir: Path, canonical: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = None
    for folder in (directory, state_dir / _SNAPSHOT_SUBDIR):
        if folder.is_dir():
            for resource in terminology_resources(folder):
                if resource.get("url") == canonical:
                    found = dict(resource)
    return found


def _concepts_of(resource: Mapping[str, Any]) -> dict[Code, dict[str, Any]]:
    out: dict[Code, dict[str, Any]] = {}
    for include in resource.get("compose", {}).get("include", []):
        for concept in include.get("concept", []):
            if include.get("system"):
                out[(include["system"], str(concept["code"]))] = dict(concept)
    return out


def _is_removed(concept: Mapping[str, Any]) -> bool:
    return any(e.get("url") == REMOVED_EXTENSION for e in concept.get("extension", []))


def _updated_valueset(server_vs: Mapping[str, Any], local: Mapping[str, Any] | None,
                      expansion: list[dict[str, Any]], base: str, fetched_at: str,
                      change: ValueSetChange) -> dict[str, Any]:
    old = _concepts_of(local) if local else {}
    new: dict[Code, dict[str, Any]] = {}
    for entry in expansion:
        concept: dict[str, Any] = {"code": str(entry["code"])}
        if entry.get("display"):
            concept["display"] = entry["display"]
        new[(entry["system"], str(entry["code"]))] = concept
    for key, concept in new.items():
        before = old.get(key)
        if before is None or _is_removed(before):
            change.added.append(key)
        elif before.get("display") != concept.get("display"):
            change.display_changes.append((key[0], key[1], before.get("display"), concept.get("display")))
    merged = dict(new)
    for key, concept in old.items():
        if key in new:
            continue
        if not _is_removed(concept):
            change.removed.append(key)
            concept = {**concept, "extension": [{"url": REMOVED_EXTENSION,
                                                 "valueString": str(server_vs.get("version", fetched_at))}]}
        merged[key] = concept  # never drop a code stored data may still use
    includes: dict[str, list[dict[str, Any]]] = {}
    for (system, _code), concept in merged.items():
        includes.setdefault(system, []).append(concept)
    kept = ("id", "url", "identifier", "version", "name", "title", "status", "experimental", "date",
            "publisher", "description")
    resource: dict[str, Any] = {"resourceType": "ValueSet"}
    for name in kept:
        if name in server_vs:
            resource[name] = server_vs[name]
        elif local and name in local:
            resource[name] = local[name]
    if local and local.get("id"):
        resource["id"] = local["id"]  # keep the snapshot's id so the file replaces the same resource
    resource["id"] = _SAFE_ID.sub("-", str(resource.get("id") or change.canonical.rsplit("/", 1)[-1]))[:64]
    resource["purpose"] = f"Expansion fetched by vtdui from {base} at {fetched_at}."
    resource["compose"] = {"include": [{"system": s, "concept": c} for s, c in includes.items()]}
    return resource


def _a32_pairs(resource: Mapping[str, Any] | None) -> set[Code]:
    if not resource:
        return set()
    return {(str(e["code"]), str(t["code"])) for g in resource.get("group", []) for e in g.get("element", [])
            for t in e.get("target", []) if "code" in t}


def _write(state_dir: Path, resource: Mapping[str, Any]) -> Path:
    folder = state_dir / _SNAPSHOT_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{resource['resourceType']}-{resource['id']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(resource, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def update_from_server(
    base_url: str,
    canonicals: Iterable[str] = DEFAULT_CANONICALS,
    *,
    client: httpx.Client | None = None,
    state_dir: Path,
    snapshot_dir: Path | None = None,
    page_size: int = 200,
    now: datetime | None = None,
) -> UpdateReport:
    """Refresh value sets (and ASS_A32) from a FHIR R4 terminology server into ``state_dir``.

    For each canonical: ``GET ValueSet?url=`` reads the current version, ``ValueSet/$expand`` with
    ``count``/``offset`` paging reads the codes, and the result is compared with the local copy
    (``state_dir/terminology`` if present, else the shipped snapshot). An updated ValueSet is written
    to ``state_dir/terminology``; codes the server no longer lists are kept, marked with
    :data:`REMOVED_EXTENSION`. A ConceptMap canonical (ASS_A32) is read with ``GET ConceptMap?url=``.
    One failing canonical does not stop the others: its error is in the report.

    Args:
        base_url: FHIR base of the terminology server (e.g. ``https://smt.esante.gouv.fr/fhir``).
        canonicals: canonical URLs to refresh.
        client: HTTP client (timeouts, auth headers, proxies are the caller's); one is made otherwise.
        state_dir: where to write (``state_dir/terminology``); the shipped snapshot is never modified.
        snapshot_dir: the shipped snapshot (default ``profiles/terminology``).
        page_size: ``count`` of each ``$expand`` page.
        now: clock, for tests.

    Raises:
        ConfigError: ``page_size`` is not positive.
    """
    if page_size < 1:
        raise ConfigError("page_size must be at least 1")
    base = base_url.rstrip("/")
    fetched_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    shipped = snapshot_dir if snapshot_dir is not None else terminology_dir()
    report = UpdateReport(server=base, fetched_at=fetched_at)
    own = client is None
    http = client if client is not None else httpx.Client(timeout=60.0)
    try:
        for canonical in canonicals:
            local = _local_resource(shipped, state_dir, canonical)
            change = ValueSetChange(canonical, local.get("version") if local else None, None)
            report.changes.append(change)
            try:
                if (local or {}).get("resourceType") == "ConceptMap" or canonical == sdo.ASS_A32:
                    _update_conceptmap(http, base, canonical, local, state_dir, fetched_at, change)
                    continue
                server_vs = _search_one(http, base, "ValueSet", canonical)
                if server_vs is None:
                    change.error = "not found on the terminology server (ValueSet?url=)"
                    continue
                change.new_version = server_vs.get("version")
                expansion = _expand(http, base, canonical, change.new_version, page_size)
                updated = _updated_valueset(server_vs, local, expansion, base, fetched_at, change)
                if change.changed or local is None:
                    change.written = _write(state_dir, updated)
            except (RemoteError, RetriableError) as exc:
                change.error = str(exc)
    finally:
        if own:
            http.close()
    return report


def _update_conceptmap(http: httpx.Client, base: str, canonical: str, local: Mapping[str, Any] | None,
                       state_dir: Path, fetched_at: str, change: ValueSetChange) -> None:
    server_cm = _search_one(http, base, "ConceptMap", canonical)
    if server_cm is None:
        change.error = "not found on the terminology server (ConceptMap?url=)"
        return
    change.new_version = server_cm.get("version")
    old, new = _a32_pairs(local), _a32_pairs(server_cm)
    # for a ConceptMap, "codes" are (status, motif) pairs
    change.added = sorted(new - old)
    change.removed = sorted(old - new)
    if change.changed or local is None:
        resource = dict(server_cm)
        resource.pop("meta", None)
        resource["id"] = str((local or {}).get("id") or resource.get("id") or "ASS-A32")
        resource["purpose"] = f"Fetched by vtdui from {base} at {fetched_at}."
        change.written = _write(state_dir, resource)
