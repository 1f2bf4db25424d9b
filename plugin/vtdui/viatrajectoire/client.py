"""The DUI's ViaTrajectoire client: flux 1 to 5 of IG ans.fhir.fr.sdo 4.0.7 over mTLS + OAuth2.

One client per legal entity (one certificate, one token); the establishment (FINESS EG) is an argument
of every call and goes out as ``struct_idnat: 1 + FINESS EG``.

=========================  =================================================================  ==========
method                     request                                                            flux
=========================  =================================================================  ==========
``search_decisions``       ``GET DocumentReference?type=57830-2&_lastUpdated=gt…&_elements=id``  1.1 / 1.2
``read_document``          ``GET DocumentReference/{id}``                                     1.3 / 1.4
``post_consent``           ``POST Consent``                                                   2
``search_evaluation``      ``GET DocumentReference?identifier={idNat_Decision}&type=51848-0``    3.1 / 3.2
``post_task``              ``POST Task``                                                      4
``search_statuses``        ``GET Task?_lastUpdated=gt…``                                       5.1 / 5.2
=========================  =================================================================  ==========

What a caller should do with each error (see :mod:`vtdui.errors`):

* :class:`~vtdui.errors.RetriableError`: 429, 5xx, timeouts, network errors, once ``retry.attempts``
  attempts with exponential backoff are spent (or at once when ``Retry-After`` exceeds ``max_delay``):
  try again later. Its subclass :class:`DeliveryUncertainError` says a POST may have been applied
  although no answer came: it is never retried here (ViaTrajectoire has no idempotency key), the
  outbox decides.
* :class:`~vtdui.errors.AuthError`: TLS refused, token refused, 401 after one renewal, 403 (``struct_idnat``
  not in the token): fix the configuration or the referencing. :class:`ConsentRequiredError` is the 403
  of flux 3.1 (no consent yet).
* :class:`~vtdui.errors.RemoteError`: any other refusal, with the OperationOutcome and its issue texts.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote, urljoin

import httpx

from vtdui import __version__
from vtdui.config import LegalEntity, RetrySettings, ViaTrajectoireSettings
from vtdui.errors import AuthError, ConfigError, RemoteError, RetriableError
from vtdui.sdo import TYPE_DECISION, TYPE_EVALUATION, id_nat_struct
from vtdui.viatrajectoire import _transport
from vtdui.viatrajectoire.auth import TokenProvider
from vtdui.viatrajectoire.retry import backoff_delay, parse_http_date, parse_retry_after, response_date
from vtdui.viatrajectoire.tls import build_ssl_context
from vtdui.viatrajectoire.trace import ExchangeCallback

__all__ = [
    "ConsentRequiredError",
    "CreatedResource",
    "DeliveryUncertainError",
    "ReadRefusedError",
    "SearchHit",
    "SearchResults",
    "ViaTrajectoireClient",
    "format_instant",
    "last_updated_gt",
]

log = logging.getLogger("vtdui.viatrajectoire")

FHIR_JSON = "application/fhir+json"
_MAX_PAGES = 10_000  # a server whose next links never end must not hold a worker forever

T = TypeVar("T")


class ConsentRequiredError(AuthError):
    """Flux 3.1 answered 403: no consent (flux 2) registered for this decision and establishment.

    The IG leaves the refusal open (403 or an empty searchset); an empty searchset gives ``[]`` instead.
    """


class ReadRefusedError(RemoteError):
    """Flux 1.3 answered 403 for one id: allowed by the IG (§3.2) for a decision not notified to this ESMS.

    Not an :class:`AuthError`: the establishment's other reads go on; only this document is kept aside.
    """


class DeliveryUncertainError(RetriableError):
    """A POST got no clear answer (timeout after sending, 500/502/504): it may have been applied.

    Not retried by the client, because a blind resend could create a second Task or Consent.
    """


@dataclass(frozen=True)
class SearchHit:
    """One DocumentReference id returned by flux 1.2 (``_elements=id``: a subsetted entry).

    Attributes:
        id: the technical id to read with flux 1.3.
        last_updated: ``meta.lastUpdated`` as sent (FHIR instant), if present.
        version_id: ``meta.versionId``, if present.
        identifiers: the entry's identifiers (``usual`` idDecision, ``official`` idNat_Decision) if present.

    """

    id: str
    last_updated: str | None = None
    version_id: str | None = None
    identifiers: tuple[Mapping[str, Any], ...] = ()

    def identifier(self, use: str) -> str | None:
        """Return the identifier value with this ``use`` (``official`` = idNat_Decision), if any."""
        for ident in self.identifiers:
            value = ident.get("value")
            if ident.get("use") == use and isinstance(value, str):
                return value
        return None


@dataclass(frozen=True)
class CreatedResource:
    """The answer to a create (flux 2 and 4).

    Attributes:
        status: HTTP status (201, or 200 when the server returned an existing resource).
        resource: the stored resource as returned (``{}`` when the body was empty).
        location: the ``Location`` header, e.g. ``[base]/Task/tk-1/_history/1``.
        id: the server id (from ``Location``, else from the body).
        version_id: the version (from ``Location``, else ``meta.versionId``).

    """

    status: int
    resource: dict[str, Any] = field(repr=False)
    location: str | None
    id: str | None
    version_id: str | None


class SearchResults(Iterator[T], Generic[T]):
    """Lazy results of a paged search; ``server_time`` is the ``Date`` of the first page.

    Iterating fetches the pages one by one (``Bundle.link[next]``). Base the next ``_lastUpdated``
    cursor on ``server_time`` (minus an overlap) rather than on the local clock.
    """

    def __init__(self, produce: Callable[[SearchResults[T]], Iterator[T]]) -> None:
        self.server_time: datetime | None = None
        self.pages = 0
        self._it = produce(self)

    def __next__(self) -> T:
        return next(self._it)


def format_instant(moment: datetime) -> str:
    """Format a FHIR instant with milliseconds and the timezone, e.g. ``2026-05-10T06:00:00.000+02:00``.

    Raises:
        ValueError: ``moment`` is naive (the IG requires a timezone).

    """
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("_lastUpdated needs a timezone-aware datetime (the IG requires the offset)")
    if offset % timedelta(minutes=1):
        # FHIR offsets are hh:mm; a historical zone with seconds is expressed in UTC instead.
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")


def last_updated_gt(moment: datetime) -> str:
    """Return the URL-ready ``_lastUpdated`` value ``gt<instant>`` with ``+`` escaped as ``%2B`` (IG §3.4)."""
    return "gt" + quote(format_instant(moment), safe=":")


def _query(pairs: Iterable[tuple[str, str]]) -> str:
    # Built by hand: values already escaped where the IG requires it (%2B) stay as they are.
    return "&".join(f"{name}={value}" for name, value in pairs)


def _token(value: str) -> str:
    r"""A token search value: FHIR escapes ``\``, ``|``, ``,`` and ``$`` with a backslash, then URL-encoding."""
    escaped = "".join("\\" + c if c in "\\|,$" else c for c in value)
    return quote(escaped, safe=":")


class ViaTrajectoireClient:
    """Talk to ViaTrajectoire on behalf of the establishments of one legal entity.

    Args:
        settings: base URL, token URL, client id/secret, CA file, timeout, page size, renewal margin.
        entity: the legal entity: its client certificate and its establishments.
        retry: attempts and delays for passing faults.
        transport: an httpx transport to use instead of the mTLS network one (tests); no certificate
            is loaded then.
        clock: monotonic seconds (durations, token expiry).
        sleep: how to wait between attempts (tests inject a recorder).
        rand: source of jitter in [0, 1].
        on_exchange: receives every HTTP attempt (see :mod:`vtdui.viatrajectoire.trace`).

    Raises:
        ConfigError: certificate, key, PKCS#12 or CA unusable; client id missing.

    """

    def __init__(self, settings: ViaTrajectoireSettings, entity: LegalEntity, retry: RetrySettings, *,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random,
                 on_exchange: ExchangeCallback | None = None) -> None:
        if retry.attempts < 1:
            raise ConfigError("retry.attempts must be at least 1")
        self.settings = settings
        self.entity = entity
        self.retry = retry
        self._base = settings.base_url.rstrip("/")
        self._origin = _origin(self._base)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._on_exchange = on_exchange
        timeout = httpx.Timeout(settings.timeout)
        # Drop idle connections before common server keep-alive timeouts (5 s for uvicorn, nginx 75 s) so
        # that a POST is not written into a socket the server is closing: that failure would be ambiguous.
        limits = httpx.Limits(keepalive_expiry=2.0)
        headers = {"User-Agent": f"vtdui/{__version__}"}
        if transport is None:
            context = build_ssl_context(entity, settings.ca_file)
            self._http = httpx.Client(verify=context, timeout=timeout, headers=headers, limits=limits,
                                      follow_redirects=False)
        else:
            self._http = httpx.Client(transport=transport, timeout=timeout, headers=headers, limits=limits,
                                      follow_redirects=False)
        self.auth = TokenProvider(settings, self._http, finess_ej=entity.finess_ej, clock=clock,
                                  on_exchange=on_exchange)
        self._egs = {eg.finess_eg for eg in entity.establishments}
        #: ``Date`` of the latest response from ViaTrajectoire (server clock), if any.
        self.last_server_time: datetime | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- flux ---------------------------------------------------------------------------------------

    def search_decisions(self, finess_eg: str, since: datetime) -> SearchResults[SearchHit]:
        """Flux 1.1: ids of the decisions notified to the establishment and updated after ``since``.

        Pages are followed; an id seen twice (a resource moving between pages) is returned once.

        Args:
            finess_eg: the establishment (FINESS EG, or its idNat_Struct).
            since: timezone-aware lower bound (exclusive).

        """
        query = _query([("type", TYPE_DECISION), ("_lastUpdated", last_updated_gt(since)), ("_elements", "id"),
                        *self._count()])
        url = f"{self._base}/DocumentReference?{query}"

        def produce(results: SearchResults[SearchHit]) -> Iterator[SearchHit]:
            seen: set[str] = set()
            for resource in self._search(finess_eg, url, "flux 1.1 DocumentReference search", results):
                hit = _hit(resource)
                if hit is None or hit.id in seen:
                    continue
                seen.add(hit.id)
                yield hit

        return SearchResults(produce)

    def read_document(self, finess_eg: str, resource_id: str) -> dict[str, Any]:
        """Flux 1.3: read one DocumentReference (with its base64 CDA), by the id flux 1.2 gave."""
        if not resource_id or "/" in resource_id:
            raise ValueError(f"not a FHIR logical id: {resource_id!r}")
        url = f"{self._base}/DocumentReference/{quote(resource_id, safe='')}"
        what = "flux 1.3 DocumentReference read"
        try:
            response = self._call("GET", url, finess_eg, what)
        except AuthError as exc:
            if exc.status == 403:
                # IG §3.2: a read of an id not (or no longer) notified to this ESMS may be refused with 403
                raise ReadRefusedError(f"{what}: HTTP 403 for this document (not notified to establishment "
                                       f"{finess_eg[-9:]}?){_issues(exc)}", status=403, outcome=exc.outcome) from exc
            raise
        resource = _json(response, what)
        _expect_type(resource, "DocumentReference", what)
        return resource

    def post_consent(self, finess_eg: str, consent: Mapping[str, Any]) -> CreatedResource:
        """Flux 2: create an ESMSConsent; return what the server stored."""
        return self._create(finess_eg, "Consent", consent, "flux 2 Consent create")

    def search_evaluation(self, finess_eg: str, id_nat_decision: str) -> list[dict[str, Any]]:
        """Flux 3.1: the evaluation DocumentReference(s) of a decision.

        Returns:
            The DocumentReferences found; ``[]`` when the server answers with an empty searchset (which
            the IG allows for "no consent yet" as well as "no evaluation").

        Raises:
            ConsentRequiredError: the server answered 403 (its other way of saying "no consent").

        """
        if not id_nat_decision:
            raise ValueError("id_nat_decision is empty")
        query = _query([("identifier", _token(id_nat_decision)), ("type", TYPE_EVALUATION)])
        url = f"{self._base}/DocumentReference?{query}"
        try:
            return list(self._search(finess_eg, url, "flux 3.1 evaluation search", None))
        except ConsentRequiredError:
            raise
        except AuthError as exc:
            if exc.status == 403:
                raise ConsentRequiredError(
                    f"{exc} (flux 3: register the person's consent with flux 2 before reading the evaluation)",
                    status=403, outcome=exc.outcome) from exc
            raise

    def post_task(self, finess_eg: str, task: Mapping[str, Any]) -> CreatedResource:
        """Flux 4: create an ESMSTask (one POST per status event, never an update)."""
        return self._create(finess_eg, "Task", task, "flux 4 Task create")

    def search_statuses(self, finess_eg: str, since: datetime) -> SearchResults[dict[str, Any]]:
        """Flux 5.1: Tasks (statuses of other ESMS, MDPH events) updated after ``since``.

        Pages are followed; a Task seen twice with the same version is returned once.
        """
        query = _query([("_lastUpdated", last_updated_gt(since)), *self._count()])
        url = f"{self._base}/Task?{query}"

        def produce(results: SearchResults[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            seen: set[tuple[str, str]] = set()
            for resource in self._search(finess_eg, url, "flux 5.1 Task search", results):
                if resource.get("resourceType") != "Task" or not isinstance(resource.get("id"), str):
                    log.warning("flux 5.2: ignored an entry that is not a Task with an id")
                    continue
                meta = _obj(resource.get("meta"))
                key = (str(resource["id"]), str(meta.get("versionId") or meta.get("lastUpdated") or ""))
                if key in seen:
                    continue
                seen.add(key)
                yield resource

        return SearchResults(produce)

    # -- plumbing -----------------------------------------------------------------------------------

    def _count(self) -> list[tuple[str, str]]:
        return [("_count", str(self.settings.page_size))] if self.settings.page_size else []

    def _create(self, finess_eg: str, resource_type: str, resource: Mapping[str, Any],
                what: str) -> CreatedResource:
        if resource.get("resourceType") != resource_type:
            raise ValueError(f"{what}: expected a {resource_type}, got {resource.get('resourceType')!r}")
        body = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        response = self._call("POST", f"{self._base}/{resource_type}", finess_eg, what, body=body)
        stored = _json(response, what) if response.content.strip() else {}
        if stored:
            _expect_type(stored, resource_type, what)
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        res_id, version = _parse_location(location, resource_type)
        meta = _obj(stored.get("meta"))
        return CreatedResource(
            status=response.status_code, resource=stored, location=location,
            id=res_id or (str(stored["id"]) if isinstance(stored.get("id"), str) else None),
            version_id=version or (str(meta["versionId"]) if isinstance(meta.get("versionId"), str) else None),
        )

    def _search(self, finess_eg: str, first_url: str, what: str,
                results: SearchResults[Any] | None) -> Iterator[dict[str, Any]]:
        url: str | None = first_url
        visited: set[str] = set()
        while url is not None:
            if len(visited) >= _MAX_PAGES:
                raise RemoteError(f"{what}: more than {_MAX_PAGES} pages; stopped")
            visited.add(url)
            response = self._call("GET", url, finess_eg, what)
            if results is not None:
                results.pages += 1
                if results.server_time is None:
                    results.server_time = parse_http_date(response.headers.get("Date"))
            bundle = _json(response, what)
            _expect_type(bundle, "Bundle", what)
            entries = bundle.get("entry") or []
            if not isinstance(entries, list):
                raise RemoteError(f"{what}: Bundle.entry is not a list", status=response.status_code)
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                search = _obj(entry.get("search"))
                if search.get("mode", "match") != "match":  # include/outcome entries are not results
                    continue
                resource = entry.get("resource")
                if isinstance(resource, dict):
                    if "id" not in resource and isinstance(entry.get("fullUrl"), str):
                        resource = {**resource, "id": str(entry["fullUrl"]).rstrip("/").rsplit("/", 1)[-1]}
                    yield resource
            url = self._next_link(bundle, url, what)
            if url is not None and url in visited:
                raise RemoteError(f"{what}: Bundle.link[next] points back to a page already read")

    def _next_link(self, bundle: Mapping[str, Any], current: str, what: str) -> str | None:
        for link in bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                target = urljoin(current, str(link["url"]))
                origin = _origin(target)
                if origin != self._origin:
                    # never hand the bearer token and struct_idnat to another host
                    raise RemoteError(f"{what}: Bundle.link[next] leads to another server ({origin}); refused")
                return target
        return None

    def _headers(self, token: str, finess_eg: str, with_body: bool) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "struct_idnat": self._struct_idnat(finess_eg),
                   "Accept": FHIR_JSON}
        if with_body:
            headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
        return headers

    def _struct_idnat(self, finess_eg: str) -> str:
        value = id_nat_struct(finess_eg)
        if value[1:] not in self._egs:
            raise ConfigError(f"establishment {value[1:]} does not belong to legal entity "
                              f"{self.entity.finess_ej}; add it under its [[legal_entities.establishments]]")
        return value

    def _call(self, method: str, url: str, finess_eg: str, what: str, *, body: bytes | None = None) -> httpx.Response:
        """Send with token, retries and classification; return a 2xx response."""
        struct = self._struct_idnat(finess_eg)
        safe = method in {"GET", "HEAD"}
        label = f"{what} for establishment {struct[1:]}"
        failures = 0
        tries = 0
        renewed = False
        while True:
            tries += 1
            try:
                token = self.auth.token(attempt=tries)
                request = self._http.build_request(method, url, headers=self._headers(token, struct, body is not None),
                                                   content=body)
                try:
                    response = _transport.send(self._http, request, kind="fhir", finess_eg=struct[1:], attempt=tries,
                                               clock=self._clock, on_exchange=self._on_exchange,
                                               max_bytes=self.settings.max_response_bytes)
                except httpx.HTTPError as exc:
                    failure = _transport.transport_failure(exc, label)
                    if isinstance(failure, RetriableError) and not safe and not _never_sent(exc):
                        raise DeliveryUncertainError(
                            f"{failure}; the {method} may have been applied, not resent automatically") from exc
                    raise failure from exc
                self._note_date(response)
                status = response.status_code
                if status == 401:
                    if renewed:
                        raise AuthError(f"{label}: HTTP 401 even with a fresh token{_issue_suffix(response)}",
                                        status=401, outcome=_outcome(response))
                    renewed = True
                    self.auth.renew(token, attempt=tries)
                    continue
                if status == 429 or status >= 500:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"),
                                                    response_date(response.headers))
                    message = f"{label}: HTTP {status}{_issue_suffix(response)}"
                    if not safe and status not in {429, 503}:
                        raise DeliveryUncertainError(f"{message}; the {method} may have been applied, "
                                                     "not resent automatically", retry_after=retry_after, status=status)
                    raise RetriableError(message, retry_after=retry_after, status=status)
                if status == 403:
                    raise AuthError(f"{label}: HTTP 403 forbidden (is establishment {struct[1:]} in the token of "
                                    f"legal entity {self.entity.finess_ej}?){_issue_suffix(response)}",
                                    status=403, outcome=_outcome(response))
                if not 200 <= status < 300:
                    raise RemoteError(f"{label}: HTTP {status}{_issue_suffix(response)}", status=status,
                                      outcome=_outcome(response))
                return response
            except DeliveryUncertainError:
                raise
            except RetriableError as exc:
                failures += 1
                if failures >= self.retry.attempts:
                    raise RetriableError(f"{exc} (gave up after {failures} attempts)", retry_after=exc.retry_after,
                                         status=exc.status) from exc
                if exc.retry_after is not None and exc.retry_after > self.retry.max_delay:
                    raise RetriableError(f"{exc} (server asks to wait {exc.retry_after:.0f}s, more than "
                                         f"retry.max_delay)", retry_after=exc.retry_after, status=exc.status) from exc
                delay = backoff_delay(failures, self.retry, retry_after=exc.retry_after, rand=self._rand())
                log.info("%s: attempt %d failed, retrying in %.1fs", what, failures, delay)
                self._sleep(delay)

    def _note_date(self, response: httpx.Response) -> None:
        when = parse_http_date(response.headers.get("Date"))
        if when is not None:
            self.last_server_time = when


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or {'https': 443, 'http': 80}.get(parsed.scheme)}"


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _never_sent(exc: httpx.HTTPError) -> bool:
    # The request cannot have reached the server: safe to resend even a POST.
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise RemoteError(f"{what}: the response is not valid JSON (HTTP {response.status_code}, "
                          f"Content-Type {response.headers.get('Content-Type')!r})",
                          status=response.status_code) from exc
    if not isinstance(data, dict):
        raise RemoteError(f"{what}: the response is not a JSON object", status=response.status_code)
    return data


def _expect_type(resource: Mapping[str, Any], resource_type: str, what: str) -> None:
    if resource.get("resourceType") != resource_type:
        raise RemoteError(f"{what}: expected a {resource_type}, got {resource.get('resourceType')!r}")


def _outcome(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        return data
    return None


def _issues(exc: RemoteError) -> str:
    texts = [t for t in exc.issues() if t]
    return (": " + "; ".join(texts)) if texts else ""


def _issue_suffix(response: httpx.Response) -> str:
    outcome = _outcome(response)
    if outcome is None:
        return ""
    texts = RemoteError("", outcome=outcome).issues()
    return (": " + "; ".join(t for t in texts if t)) if any(texts) else ""


def _hit(resource: Mapping[str, Any]) -> SearchHit | None:
    res_id = resource.get("id")
    if not isinstance(res_id, str) or not res_id:
        log.warning("flux 1.2: ignored an entry without a resource id")
        return None
    meta = _obj(resource.get("meta"))
    identifiers = _list(resource.get("identifier"))
    return SearchHit(
        id=res_id,
        last_updated=str(meta["lastUpdated"]) if isinstance(meta.get("lastUpdated"), str) else None,
        version_id=str(meta["versionId"]) if isinstance(meta.get("versionId"), str) else None,
        identifiers=tuple(i for i in identifiers if isinstance(i, dict)),
    )


def _parse_location(location: str | None, resource_type: str) -> tuple[str | None, str | None]:
    if not location:
        return None, None
    parts = httpx.URL(location).path.strip("/").split("/")
    try:
        index = len(parts) - 1 - parts[::-1].index(resource_type)
    except ValueError:
        return None, None
    rest = parts[index + 1:]
    res_id = rest[0] if rest else None
    version = rest[2] if len(rest) >= 3 and rest[1] == "_history" else None
    return res_id, version
