"""What both listeners of one simulator share: settings, store, PKI, tokens, faults, terminology, search pages."""

from __future__ import annotations

import copy
import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from vtdui.profiles import terminology_resources
from vtdui.simulator.auth import TokenStore
from vtdui.simulator.faults import FaultInjector
from vtdui.simulator.pki import Pki, finess_ej_of
from vtdui.simulator.settings import SimulatorSettings
from vtdui.simulator.state import SimulatorState
from vtdui.terminology import REMOVED_EXTENSION, Terminology

__all__ = ["PeerCertificate", "SearchPage", "SimulatorContext", "TerminologyState"]

_MAX_PAGES = 2000


@dataclass(frozen=True)
class PeerCertificate:
    """The client certificate of a connection, as the server sees it."""

    finess_ej: str | None
    fingerprint: str
    subject: str


@dataclass(frozen=True)
class SearchPage:
    """A stored search result, served page by page through opaque ``_getpages`` tokens.

    Attributes:
        finess_eg: the caller the result belongs to (another establishment cannot read it).
        resource_type: ``DocumentReference`` or ``Task``.
        ids: matching ids, in order, fixed when the search ran.
        offset: first index of this page.
        count: page size.
        self_url: the original search URL.
    """

    finess_eg: str
    resource_type: str
    ids: tuple[str, ...]
    offset: int
    count: int
    self_url: str


class TerminologyState:
    """The JDV snapshot served by the admin terminology endpoint and used to validate what the DUI posts.

    The admin side can bump a ValueSet's version and add or remove codes, so that a DUI's JDV update
    can be tested: removed codes are then refused in flux 4.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._original = terminology_resources()
        self._resources = copy.deepcopy(self._original)
        self._cached: Terminology | None = None

    def resources(self) -> list[dict[str, Any]]:
        """A copy of the current resources."""
        with self._lock:
            return copy.deepcopy(self._resources)

    def find(self, resource_type: str, url: str) -> dict[str, Any] | None:
        """The current resource of that type and canonical URL."""
        with self._lock:
            for resource in self._resources:
                if resource.get("resourceType") == resource_type and resource.get("url") == url:
                    return copy.deepcopy(resource)
        return None

    def terminology(self) -> Terminology:
        """The :class:`Terminology` of the current resources (rebuilt after a change)."""
        with self._lock:
            if self._cached is None:
                self._cached = Terminology.from_resources(self._resources, sources=("simulator",))
            return self._cached

    def change_valueset(self, url: str, *, add: list[dict[str, str]], remove: list[dict[str, str]],
                        version: str | None = None) -> dict[str, Any]:
        """Bump a ValueSet's version, add and remove codes; return the new ValueSet.

        Raises:
            KeyError: unknown ValueSet.
            ValueError: a code entry lacks ``system`` or ``code``.
        """
        for entry in [*add, *remove]:
            if not entry.get("system") or not entry.get("code"):
                raise ValueError("each code needs 'system' and 'code'")
        with self._lock:
            matches = [r for r in self._resources if r.get("resourceType") == "ValueSet" and r.get("url") == url]
            target = matches[0] if matches else None
            if target is None:
                raise KeyError(url)
            includes: list[dict[str, Any]] = target.setdefault("compose", {}).setdefault("include", [])
            removing = {(e["system"], e["code"]) for e in remove}
            for include in includes:
                include["concept"] = [c for c in include.get("concept", [])
                                      if (include.get("system"), str(c.get("code"))) not in removing]
            for entry in add:
                same_system = [i for i in includes if i.get("system") == entry["system"]]
                if not same_system:
                    includes.append({"system": entry["system"], "concept": []})
                    same_system = includes[-1:]
                concepts = same_system[0].setdefault("concept", [])
                if not any(str(c.get("code")) == entry["code"] for c in concepts):
                    concept = {"code": entry["code"]}
                    if entry.get("display"):
                        concept["display"] = entry["display"]
                    concepts.append(concept)
            target["version"] = version or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            self._cached = None
            return copy.deepcopy(target)

    def change_conceptmap(self, url: str, *, add: list[dict[str, str]], remove: list[dict[str, str]],
                          version: str | None = None) -> dict[str, Any]:
        """Bump a ConceptMap's version (ASS_A32), add and remove ``{"source", "target"}`` pairs; return it.

        A status newly allowed a motif is what a JDV update that adds a reason also publishes: the
        motif must be allowed for a status by ASS_A32 as well as be in the JDV.

        Raises:
            KeyError: unknown ConceptMap.
            ValueError: a pair lacks ``source`` or ``target``.
        """
        for entry in [*add, *remove]:
            if not entry.get("source") or not entry.get("target"):
                raise ValueError("each pair needs 'source' (status) and 'target' (motif)")
        with self._lock:
            target = next((r for r in self._resources
                           if r.get("resourceType") == "ConceptMap" and r.get("url") == url), None)
            if target is None:
                raise KeyError(url)
            groups: list[dict[str, Any]] = target.setdefault("group", [])
            if not groups:
                groups.append({"element": []})
            removing = {(e["source"], e["target"]) for e in remove}
            for group in groups:
                for element in group.get("element", []):
                    element["target"] = [t for t in element.get("target", [])
                                         if (str(element.get("code")), str(t.get("code"))) not in removing]
            elements: list[dict[str, Any]] = groups[0].setdefault("element", [])
            for entry in add:
                element = next((e for g in groups for e in g.get("element", [])
                                if str(e.get("code")) == entry["source"]), None)
                if element is None:
                    element = {"code": entry["source"], "target": []}
                    elements.append(element)
                targets = element.setdefault("target", [])
                if not any(str(t.get("code")) == entry["target"] for t in targets):
                    targets.append({"code": entry["target"], "equivalence": "relatedto"})
            target["version"] = version or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            self._cached = None
            return copy.deepcopy(target)

    def reset(self) -> None:
        """Back to the shipped snapshot."""
        with self._lock:
            self._resources = copy.deepcopy(self._original)
            self._cached = None

    @staticmethod
    def active_concepts(valueset: dict[str, Any]) -> list[dict[str, str]]:
        """``(system, code, display)`` of the codes a ValueSet currently contains (removed ones left out)."""
        out: list[dict[str, str]] = []
        for include in valueset.get("compose", {}).get("include", []):
            system = include.get("system")
            if not system:
                continue
            for concept in include.get("concept", []):
                if any(e.get("url") == REMOVED_EXTENSION for e in concept.get("extension", [])):
                    continue
                item = {"system": system, "code": str(concept["code"])}
                if concept.get("display"):
                    item["display"] = concept["display"]
                out.append(item)
        return out


class SimulatorContext:
    """Shared state of one simulator run.

    Args:
        settings: how it runs.
        state: the store.
        pki: certificates and client credentials.
        fhir_base_url: public FHIR base (``https://127.0.0.1:8443/fhir``).
        token_url: public token URL.
        admin_url: admin base (``http://127.0.0.1:8444/_admin``).
    """

    def __init__(self, settings: SimulatorSettings, state: SimulatorState, pki: Pki, *, fhir_base_url: str,
                 token_url: str, admin_url: str) -> None:
        self.settings = settings
        self.state = state
        self.pki = pki
        self.fhir_base_url = fhir_base_url
        self.token_url = token_url
        self.admin_url = admin_url
        self.tokens = TokenStore(settings.token_lifetime)
        self.faults = FaultInjector()
        #: what the token endpoint requires: ``client_auth`` "any", "basic" or "form"; ``scope`` (None: none)
        self.token_policy: dict[str, str | None] = {"client_auth": "any", "scope": None}
        self.terminology = TerminologyState()
        self.started_at = datetime.now(UTC)
        self._certs: dict[bytes, PeerCertificate] = {}
        self._pages: OrderedDict[str, SearchPage] = OrderedDict()
        self._lock = threading.Lock()

    def peer_certificate(self, der: bytes) -> PeerCertificate:
        """Parse (once) a client certificate presented on a connection."""
        with self._lock:
            known = self._certs.get(der)
        if known is not None:
            return known
        cert = x509.load_der_x509_certificate(der)
        peer = PeerCertificate(finess_ej_of(cert), hashlib.sha256(der).hexdigest(), cert.subject.rfc4514_string())
        with self._lock:
            self._certs[der] = peer
        return peer

    def save_page(self, page: SearchPage) -> str:
        """Store a page; return its opaque token (old pages are forgotten beyond a bound)."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._pages[token] = page
            while len(self._pages) > _MAX_PAGES:
                self._pages.popitem(last=False)
        return token

    def page(self, token: str) -> SearchPage | None:
        """The page of a token, if still known."""
        with self._lock:
            return self._pages.get(token)

    def reset(self) -> None:
        """Back to the seeded dataset: store, faults, token policy, pages and terminology (tokens are kept)."""
        self.state.reset()
        self.faults.clear()
        self.token_policy = {"client_auth": "any", "scope": None}
        self.terminology.reset()
        with self._lock:
            self._pages.clear()
