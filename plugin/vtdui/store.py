"""The HAPI side: transactions, reads, searches and history of the DUI's FHIR repository.

Writes go through :meth:`HapiStore.transaction`: one Bundle per inbound document, all-or-nothing,
conditional entries so a replay changes nothing. Every request, writes, reads, searches and their pages
alike, goes through one ``httpx.Client`` (kept open: its pool reuses the connection to HAPI) and one
translation of errors at this boundary, which is the one retry policy towards HAPI::

    network failure, timeout, 429, 5xx  ─▶ RetriableError (try again later; nothing was written), with
                                           the server's Retry-After; the caller's [retry] schedule retries
    4xx with an OperationOutcome        ─▶ HapiError(status, outcome) (the request itself is wrong)

A client given to the store (e.g. with another transport) therefore sees every request, searches included.

Example::

    store = HapiStore("http://127.0.0.1:8080/fhir")
    store.transaction(entries)
    items = store.worklist(finess_eg="350000014", business_status="39")
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from vtdui import sdo
from vtdui.changes import OWN_REQUEST_PREFIX, own_request_id, request_id_kept, stamp_own_write
from vtdui.errors import HapiError, RetriableError
from vtdui.fhirjson import dumps as fhir_json_bytes
from vtdui.mapping import systems, worklist

__all__ = ["HapiStore"]

log = logging.getLogger(__name__)

_FHIR_JSON = "application/fhir+json"
_PAGE_SIZE = 100


def _outcome_text(outcome: Mapping[str, Any] | None) -> str:
    if not outcome:
        return ""
    texts = [str(i.get("diagnostics") or i.get("details", {}).get("text") or i.get("code", ""))
             for i in outcome.get("issue", []) if i.get("severity") in ("fatal", "error")]
    return "; ".join(t for t in texts if t)[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _next_link(page: Mapping[str, Any]) -> str | None:
    return next((str(link["url"]) for link in page.get("link", [])
                 if link.get("relation") == "next" and link.get("url")), None)


class HapiStore:
    """Access to the HAPI FHIR server used as the DUI's repository.

    Args:
        base_url: FHIR base, e.g. ``http://127.0.0.1:8080/fhir``.
        client: the httpx client for every request to HAPI (e.g. with another transport); when ``None``
            the store makes and owns one, whose connection pool is reused by every request.
        timeout: seconds per request.
        authorization: value of the ``Authorization`` header, if the server needs one.
    """

    def __init__(self, base_url: str, *, client: httpx.Client | None = None, timeout: float = 60.0,
                 authorization: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": _FHIR_JSON, "Content-Type": _FHIR_JSON}
        if authorization:
            headers["Authorization"] = authorization
        self._owns_client = client is None
        self._http = client if client is not None else httpx.Client(timeout=timeout)
        self._headers = headers
        #: Whether HAPI stores vtdui's request ids in ``meta.source`` (seen on the first PUT it answered with
        #: the saved version; ``None`` until then). ``False``: own writes are told by their content mark only.
        self.request_ids_kept: bool | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP client if the store created it."""
        if self._owns_client:
            self._http.close()

    def __enter__(self) -> HapiStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- raw HTTP (httpx) --------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        try:
            # encoded by vtdui, not httpx's ``json=``: a bundle's encoding is a share of the ingest CPU (fhirjson)
            response = self._http.request(method, url, content=None if json is None else fhir_json_bytes(json),
                                          params=params,
                                          headers={**self._headers, **(headers or {})})
        except httpx.TransportError as exc:
            raise RetriableError(f"HAPI FHIR server at {self.base_url} unreachable: {type(exc).__name__}") from exc
        return self._answer(method, path, response)

    def _answer(self, method: str, path: str, response: httpx.Response) -> dict[str, Any]:
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        status = response.status_code
        what = f"{method} {path.split('?')[0]}"
        if status == 429 or status >= 500:
            detail = _outcome_text(body) if isinstance(body, dict) else ""
            raise RetriableError(f"HAPI answered {status} to {what}" + (f": {detail}" if detail else ""),
                                 retry_after=_retry_after(response), status=status)
        if status >= 400:
            outcome = body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None
            detail = _outcome_text(outcome) or response.reason_phrase
            raise HapiError(f"HAPI refused {what} ({status}): {detail}", status=status, outcome=outcome)
        return body if isinstance(body, dict) else {}

    # -- writes ----------------------------------------------------------------------------------------
    # Every write goes with a request id of vtdui's (X-Request-ID, vtdui.changes.own_request_id): HAPI
    # stores it as the fragment of the saved versions' meta.source, and a DUI's save that kept vtdui's
    # meta gets its own request's id instead; how vtdui tells its own versions (vtdui.changes.is_own_write).
    # The mark of their content (own_write_source) is the fallback for a HAPI that stores no request id.

    def _write(self, method: str, path: str, body: Mapping[str, Any],
               headers: Mapping[str, str] | None = None) -> tuple[dict[str, Any], str]:
        request_id = own_request_id()
        answer = self._request(method, path, json=body, headers={**(headers or {}), "X-Request-ID": request_id})
        return answer, request_id

    def _observe_source(self, answer: Mapping[str, Any], request_id: str) -> None:
        """Note from a saved version HAPI returned whether it keeps vtdui's request id; warn once if not."""
        meta = answer.get("meta")
        if not isinstance(meta, Mapping) or self.request_ids_kept is not None:
            return
        self.request_ids_kept = request_id_kept(meta.get("source"), request_id)
        if self.request_ids_kept is False:
            log.warning("HAPI at %s does not store the request id in meta.source (its "
                        "store_meta_source_information setting): vtdui tells its own writes by the mark of their "
                        "content only, so a DUI save that returns a Task to the status vtdui wrote while keeping "
                        "vtdui's meta is not sent; set it to SOURCE_URI_AND_REQUEST_ID", self.base_url)

    def check_request_ids(self, resource_type: str, resource_id: str) -> bool | None:
        """Tell whether HAPI stores vtdui's request ids in ``meta.source``, from a resource vtdui wrote.

        Looks at every stored version of the resource (e.g. a Subscription ``vtdui setup`` installed; HAPI's
        own later versions, such as its activation of a Subscription, carry no request id): ``True`` when
        one holds a request id of vtdui's, ``False`` (with the warning of :attr:`request_ids_kept`) when
        none holds any request id, ``None`` when it cannot tell (gone, or only other clients' requests).
        """
        try:
            versions = self.history(resource_type, resource_id)
        except HapiError as exc:
            if exc.status in (404, 410):
                return None
            raise
        self.request_ids_kept = None
        sources = [(v.get("meta") or {}).get("source") for v in versions]
        fragments = [s.partition("#")[2] for s in sources if isinstance(s, str) and "#" in s]
        if any(f.startswith(OWN_REQUEST_PREFIX) for f in fragments):
            self.request_ids_kept = True
        elif versions and not fragments:
            self._observe_source({"meta": {"source": sources[0]}}, own_request_id())
        return self.request_ids_kept

    def transaction(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """POST a ``transaction`` Bundle of ``entries`` and return the transaction-response Bundle.

        Raises:
            HapiError: HAPI refused the transaction (nothing was written); ``outcome`` says why.
            RetriableError: network failure or server error (nothing was written either).
        """
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_stamped(entry) for entry in entries]}
        response, _ = self._write("POST", "", bundle)
        if response.get("resourceType") != "Bundle":
            raise HapiError("HAPI answered a transaction without a Bundle", outcome=response or None)
        return response

    def update(self, resource: Mapping[str, Any], if_match: str | None = None) -> dict[str, Any]:
        """PUT a resource by id; ``if_match`` (a ``versionId``) makes the update fail if it changed since.

        Raises:
            HapiError: refused, e.g. status 412 when ``if_match`` no longer matches.
        """
        kind, ident = resource.get("resourceType"), resource.get("id")
        if not kind or not ident:
            raise HapiError("update needs a resource with resourceType and id")
        headers = {"If-Match": f'W/"{if_match}"'} if if_match else None
        answer, request_id = self._write("PUT", f"{kind}/{ident}", stamp_own_write(resource), headers)
        self._observe_source(answer, request_id)
        return answer

    # -- reads -----------------------------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """Read one resource; ``None`` when it does not exist (or was deleted)."""
        try:
            return self._request("GET", f"{resource_type}/{resource_id}")
        except HapiError as exc:
            if exc.status in (404, 410):
                return None
            raise

    def history(self, resource_type: str, resource_id: str) -> list[dict[str, Any]]:
        """Every stored version of one resource, newest first."""
        versions: list[dict[str, Any]] = []
        for page in self._pages(f"{resource_type}/{resource_id}/_history", None):
            versions += [e["resource"] for e in page.get("entry", []) if "resource" in e]
        return versions

    # -- searches ----------------------------------------------------------------------------------------

    def _pages(self, path: str, params: Mapping[str, Any] | None) -> Iterator[dict[str, Any]]:
        """Each Bundle page of a search or history, following the ``next`` links HAPI gives."""
        page: dict[str, Any] | None = self._request("GET", path, params=params)
        while page:
            yield page
            following = _next_link(page)
            page = self._request("GET", following) if following else None

    def _iterate(self, resource_type: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        query = {**params} if "_count" in params else {**params, "_count": str(_PAGE_SIZE)}
        for page in self._pages(resource_type, query):
            # a searchset may also carry included resources and OperationOutcome warnings: only the type asked
            yield from (e["resource"] for e in page.get("entry", [])
                        if e.get("resource", {}).get("resourceType") == resource_type)

    def search(self, resource_type: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every resource matching ``params`` (FHIR search parameters), all pages.

        Parameter names with a dash or a modifier are given as keys: ``{"business-status": "…|39"}``;
        a list value repeats the parameter (AND).
        """
        return list(self._iterate(resource_type, params or {}))

    def worklist(self, finess_eg: str | None = None, business_status: str | None = None) -> list[dict[str, Any]]:
        """The work-list items, optionally of one establishment and/or in one ESMS status (TRE_R357 code)."""
        params: dict[str, Any] = {"code": f"{systems.TASK_KIND_SYSTEM}|{systems.TASK_KIND_WORKLIST}"}
        if business_status is not None:
            params["business-status"] = f"{sdo.TRE_R357}|{business_status}"
        if finess_eg is not None:
            # the owner Organization carries idNat_Struct: a chained search keeps this one request
            params["owner:Organization.identifier"] = (f"{systems.ID_NAT_STRUCT_SYSTEM}|{sdo.id_nat_struct(finess_eg)},"
                                                       f"{sdo.FINESS_SYSTEM}|{finess_eg}")
        return self.search("Task", params)

    def worklist_item(self, id_nat_decision: str, finess_eg: str) -> dict[str, Any] | None:
        """The work-list Task of one decision in one establishment, or ``None`` if it is not stored yet."""
        query = worklist.worklist_query(id_nat_decision, finess_eg)
        name, _, value = query.partition("=")
        found = self.search("Task", {name: value})
        if len(found) > 1:
            log.warning("%d work-list items share one key; using the first", len(found))
        return found[0] if found else None


def _stamped(entry: Mapping[str, Any]) -> dict[str, Any]:
    resource = entry.get("resource")
    return {**entry, "resource": stamp_own_write(resource)} if isinstance(resource, Mapping) else dict(entry)
