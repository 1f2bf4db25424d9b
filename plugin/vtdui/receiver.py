"""The webhook HAPI's REST-hook Subscriptions call when a work-list Task or a Consent changes.

With ``channel.payload = application/fhir+json`` HAPI delivers a created or updated resource as
``PUT {endpoint}/{Type}/{id}`` with the stored version as body (``POST {endpoint}`` is accepted too,
for payload-less or hand-made deliveries). The receiver:

1. authenticates HAPI with the ``X-Vtdui-Secret`` header that the Subscription's ``channel.header``
   carries (constant-time comparison; 401 otherwise);
2. treats the body as a notification only: it takes the type, id and ``meta.versionId`` it names and
   hands them to :meth:`vtdui.emit.Emitter.enqueue_notification`, which reads that version back from HAPI
   (a versioned read; the current version when the body names none), and builds from what HAPI returns.
   A body naming a version HAPI does not hold (forged, stale, unknown resource) is refused (422) and
   logged, and nothing is queued: only what HAPI holds is ever sent;
3. answers **200 only after the item is committed**. If anything fails it answers 500, so HAPI delivers
   again (it retries for about a minute); beyond that, the reconciliation (:mod:`vtdui.reconcile`)
   finds the change in HAPI's history. Sending to ViaTrajectoire happens later, in the worker, so the
   answer is quick.

Every answer carries an OperationOutcome (``application/fhir+json``): HAPI's REST-hook client parses
the answer as a FHIR resource and counts any other body as a failed delivery (HAPI-1359, HAPI-1838),
retrying it and holding back the deliveries behind it. The body is counted while it is read (413 past
:data:`MAX_BODY`) and must arrive within :data:`BODY_TIMEOUT` seconds (408); a request head must arrive
within :data:`HEADER_TIMEOUT` seconds (:class:`ReceiverProtocol`, the connection is closed).

:func:`install_subscriptions` creates or updates the Subscriptions from the templates in
``profiles/subscriptions/*.json`` (fixed ids, so installing twice changes nothing) and waits until HAPI
has activated them. The secret is stored in the Subscription (HAPI has no other way to send it):
restrict read access to ``Subscription`` on the HAPI server.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from vtdui.errors import ConfigError, HapiError, VtduiError
from vtdui.outbox import OutboxItem
from vtdui.profiles import profiles_dir

__all__ = [
    "HOOK_PATH",
    "SECRET_HEADER",
    "SUBSCRIPTION_TAG",
    "InstalledSubscription",
    "ReceiverProtocol",
    "ResourceSink",
    "check_subscriptions",
    "create_app",
    "disable_subscriptions",
    "hook_endpoint",
    "install_subscriptions",
    "server_config",
    "subscription_templates",
]

log = logging.getLogger(__name__)

#: Header carrying the shared secret (set in each Subscription's ``channel.header``).
SECRET_HEADER: Final = "X-Vtdui-Secret"  # noqa: S105 - a header name, not a secret
#: ``meta.tag`` of the Subscriptions vtdui installs.
SUBSCRIPTION_TAG: Final = {"system": "urn:vtdui:fhir:tag", "code": "subscription"}
#: Path of the endpoint HAPI calls, under the receiver's base URL.
HOOK_PATH: Final = "/vtdui/hook"
_TYPES: Final = frozenset({"Task", "Consent"})
#: Largest delivery body read (bytes): a work-list Task or a Consent is a few kB.
MAX_BODY: Final = 5 * 1024 * 1024
#: Seconds a client has to send a whole body.
BODY_TIMEOUT: Final = 10.0
#: Seconds a client has, after connecting (or after its previous answer), to send a whole request head.
HEADER_TIMEOUT: Final = 10.0
#: A FHIR id (also the form of ``meta.versionId``): what may go into the versioned read's URL.
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class ResourceSink(Protocol):
    """Where deliveries go (:class:`vtdui.emit.Emitter` is one)."""

    def enqueue_notification(self, resource_type: str, resource_id: str,  # noqa: D102
                             version: str | None) -> list[OutboxItem] | None: ...


def _outcome(status: int, severity: str, code: str, text: str) -> Response:
    # Every answer is an OperationOutcome: HAPI's REST-hook client parses the body of any answer as a FHIR
    # resource and counts a delivery answered with anything else as failed (HAPI-1359 / HAPI-1838).
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": severity, "code": code, "diagnostics": text}]}
    return Response(json.dumps(outcome), status_code=status, media_type="application/fhir+json")


def _problem(status: int, code: str, text: str) -> Response:
    return _outcome(status, "error", code, text)


def _done(text: str) -> Response:
    return _outcome(200, "information", "informational", text)


class _TooLargeError(Exception):
    """The body passed the receiver's limit."""


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes or takes longer than ``timeout``.

    Counted while reading, so that a huge chunked body never sits in memory; raises :class:`_TooLargeError`, or
    :class:`TimeoutError` for a client that sends too slowly.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLargeError
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLargeError
            chunks.append(chunk)
    return b"".join(chunks)


def _delivered(raw: bytes) -> tuple[str, str, str | None]:
    """``(type, id, versionId)`` named by a delivered body; :class:`ValueError` with the reason otherwise."""
    try:
        resource = json.loads(raw)
    except RecursionError:  # deeply nested arrays: not a resource HAPI would send
        raise ValueError("the body is nested too deeply") from None
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(resource, dict):
        raise ValueError("the body is not a JSON object")
    kind, ident = resource.get("resourceType"), resource.get("id")
    if kind not in _TYPES or not isinstance(ident, str) or not _FHIR_ID.fullmatch(ident):
        raise ValueError("expected a Task or a Consent with its id")
    meta = resource.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError("meta is not a JSON object")
    version = meta.get("versionId")
    if version is not None and (not isinstance(version, str) or not _FHIR_ID.fullmatch(version)):
        raise ValueError("meta.versionId is not a FHIR id")
    return str(kind), ident, version


def create_app(sink: ResourceSink, secret: str, *, path: str = HOOK_PATH,
               on_enqueued: Callable[[], None] | None = None,
               extra_routes: Sequence[BaseRoute] = (), max_body: int = MAX_BODY,
               body_timeout: float = BODY_TIMEOUT) -> Starlette:
    """Build the receiver's ASGI application.

    Args:
        sink: what turns a delivery into outbox items (the emitter).
        secret: the shared secret HAPI sends in ``X-Vtdui-Secret``; must not be empty.
        path: the endpoint path configured in the Subscriptions.
        on_enqueued: called after a delivery produced outbox items (wakes the delivery worker).
        extra_routes: more routes served on the same port (``vtdui run`` adds ``/metrics`` and ``/health``).
        max_body: largest body read, in bytes (413 beyond, counted while reading).
        body_timeout: seconds a client has to send the whole body (408 beyond).

    Raises:
        ConfigError: no secret (a receiver anyone can feed would let anyone send statuses).
    """
    if not secret:
        raise ConfigError("receiver.secret is empty: set a long random value (e.g. receiver.secret = "
                          "\"env:VTDUI_RECEIVER_SECRET\"); HAPI sends it in the X-Vtdui-Secret header")
    expected = secret.encode("utf-8")
    base = "/" + path.strip("/")

    def authorised(request: Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        return hmac.compare_digest(given, expected)

    async def handle(request: Request) -> Response:
        if not authorised(request):
            return _problem(401, "security", f"missing or wrong {SECRET_HEADER} header")
        if request.method == "DELETE":
            return _done("a deleted work-list item reports no status")
        try:
            raw = await _read_body(request, max_body, body_timeout)
        except _TooLargeError:
            return _problem(413, "too-costly", f"body larger than {max_body} bytes")
        except TimeoutError:
            return _problem(408, "timeout", f"body not received within {body_timeout:.0f}s")
        except ClientDisconnect:  # the client went away mid-body: nobody to answer, nothing to log as an error
            return _problem(400, "incomplete", "the client disconnected before the end of the body")
        if not raw.strip():
            # a payload-less notification names no resource: the reconciliation picks the change up
            return _done("notification without payload: nothing to read")
        try:
            kind, ident, version = _delivered(raw)
        except ValueError as exc:
            return _problem(400, "structure", str(exc))
        path_type = request.path_params.get("resource_type")
        path_id = request.path_params.get("resource_id")
        if path_type is not None and (path_type != kind or (path_id is not None and path_id != ident)):
            return _problem(400, "invalid", f"the body is {kind}/{ident}, the URL names {path_type}/{path_id}")
        try:
            items = await run_in_threadpool(sink.enqueue_notification, kind, ident, version)
        except (VtduiError, OSError, ValueError) as exc:
            # 500: HAPI delivers again; the reconciliation is the safety net after HAPI gives up
            log.warning("delivery of %s/%s not queued: %s", kind, ident, exc)
            return _problem(500, "transient", "not queued, deliver again")
        if items is None:
            # the body names a version HAPI does not hold: forged or stale, never built from
            log.warning("delivery of %s/%s version %s refused: HAPI does not hold it", kind, ident, version or "-")
            return _problem(422, "not-found", f"HAPI holds no {kind}/{ident}"
                                              + (f" version {version}" if version else ""))
        if items and on_enqueued is not None:
            on_enqueued()
        return _done(f"{len(items)} outbox item(s) for {kind}/{ident}: "
                     + (", ".join(str(item.id) for item in items) or "nothing to report"))

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route(base, handle, methods=["POST", "PUT"]),
        Route(base + "/{resource_type}", handle, methods=["POST"]),
        Route(base + "/{resource_type}/{resource_id}", handle, methods=["PUT", "POST", "DELETE"]),
        Route("/healthz", health, methods=["GET"]),
        *extra_routes,
    ]
    return Starlette(routes=routes)


class ReceiverProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on request heads (``uvicorn.Config(http=ReceiverProtocol)``).

    uvicorn bounds idle keep-alive connections but not a client that connects and sends its request head
    slowly, so a few hundred slow clients could hold connections open for as long as they liked. Here a
    connection is closed when no request is being handled :data:`HEADER_TIMEOUT` seconds after it opened
    or after its previous answer; a request whose head arrived is bounded by the body timeout instead.
    """

    header_timeout: float = HEADER_TIMEOUT
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # noqa: D102
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:  # noqa: D102
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self.transport.close()


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration the receiver is served with (``vtdui run``, ``vtdui demo``).

    ``log_config=None``: uvicorn's own loggers are not given handlers of their own, so their records reach
    vtdui's handler (JSON format, redaction of tokens and secrets) like every other record;
    :class:`ReceiverProtocol` bounds slow request heads.
    """
    return uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
                          server_header=False, log_config=None, http=ReceiverProtocol)


# -- Subscriptions -----------------------------------------------------------------------------------


class SubscriptionStore(Protocol):
    """What :func:`install_subscriptions` needs from :class:`vtdui.store.HapiStore`."""

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None: ...
    def update(self, resource: Mapping[str, Any], if_match: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class InstalledSubscription:
    """One Subscription after :func:`install_subscriptions`."""

    id: str
    criteria: str
    status: str
    changed: bool


def subscription_templates(directory: Path | None = None) -> list[dict[str, Any]]:
    """Load the Subscription templates (``profiles/subscriptions/*.json``), sorted by file name.

    Raises:
        ConfigError: a template is not a Subscription with an id.
    """
    directory = directory if directory is not None else profiles_dir() / "subscriptions"
    templates: list[dict[str, Any]] = []
    for file in sorted(directory.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read Subscription template {file}: {exc}") from exc
        if not isinstance(data, dict) or data.get("resourceType") != "Subscription" or not data.get("id"):
            raise ConfigError(f"{file} is not a Subscription with an id")
        templates.append(data)
    if not templates:
        raise ConfigError(f"no Subscription template in {directory}")
    return templates


def _render(template: Mapping[str, Any], endpoint: str, secret: str) -> dict[str, Any]:
    rendered = copy.deepcopy(dict(template))
    channel = rendered.setdefault("channel", {})
    channel["endpoint"] = endpoint
    channel["header"] = [h.replace("{secret}", secret) for h in channel.get("header", [])] or [
        f"{SECRET_HEADER}: {secret}"]
    return rendered


def _same(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    def key(sub: Mapping[str, Any]) -> tuple[Any, ...]:
        channel = sub.get("channel", {})
        return (sub.get("criteria"), channel.get("type"), channel.get("endpoint"), channel.get("payload"),
                tuple(channel.get("header", [])))

    return key(current) == key(wanted) and current.get("status") == "active"


def install_subscriptions(store: SubscriptionStore, endpoint: str, secret: str, *,
                          templates: Sequence[Mapping[str, Any]] | None = None, timeout: float = 60.0,
                          sleep: Callable[[float], None] = time.sleep) -> list[InstalledSubscription]:
    """Create or update vtdui's Subscriptions in HAPI and wait until they are ``active``.

    Args:
        store: the HAPI side.
        endpoint: the receiver URL as HAPI reaches it (e.g. ``http://127.0.0.1:8765/vtdui/hook``).
        secret: the shared secret (``receiver.secret``).
        templates: Subscription templates (default: ``profiles/subscriptions``).
        timeout: seconds to wait for HAPI to activate them.
        sleep: how to wait between checks.

    Raises:
        ConfigError: no secret or no endpoint.
        HapiError: HAPI refused a Subscription, or did not activate it in time (is the REST-hook
            channel enabled: ``hapi.fhir.subscription.resthook_enabled=true``?).
    """
    if not secret:
        raise ConfigError("receiver.secret is empty: HAPI must authenticate itself to the receiver")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"receiver endpoint {endpoint!r} is not an http(s) URL")
    installed: list[InstalledSubscription] = []
    for template in templates if templates is not None else subscription_templates():
        wanted = _render(template, endpoint, secret)
        current = store.read("Subscription", str(wanted["id"]))
        changed = current is None or not _same(current, wanted)
        if changed:
            wanted["status"] = "requested"  # HAPI activates requested subscriptions of supported channels
            store.update(wanted)
        deadline = time.monotonic() + timeout
        while True:
            current = store.read("Subscription", str(wanted["id"])) or {}
            status = str(current.get("status", ""))
            if status == "active":
                break
            if status == "error" or time.monotonic() > deadline:
                raise HapiError(f"Subscription/{wanted['id']} is {status or 'missing'} after {timeout:.0f}s: is "
                                "the REST-hook channel enabled in HAPI (hapi.fhir.subscription.resthook_enabled"
                                f"=true)? {current.get('error', '')}".rstrip())
            sleep(0.5)
        installed.append(InstalledSubscription(str(wanted["id"]), str(wanted.get("criteria")), "active", changed))
        log.info("Subscription/%s %s (%s)", wanted["id"], "installed" if changed else "unchanged",
                 wanted.get("criteria"))
    return installed


def hook_endpoint(host: str, port: int, public_url: str | None = None) -> str:
    """The URL HAPI must call, ending with :data:`HOOK_PATH`.

    ``receiver.public_url`` when HAPI reaches the receiver through another name (a proxy, a container
    network), else ``http://host:port``.
    """
    if public_url:
        base = public_url.rstrip("/")
        return base if base.endswith(HOOK_PATH) else base + HOOK_PATH
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a comparison, not a bind
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}{HOOK_PATH}"


def check_subscriptions(store: SubscriptionStore, endpoint: str, secret: str, *,
                        templates: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """Say what is wrong with the installed Subscriptions (empty list: all active and pointing here).

    Used by ``vtdui run`` at start: a missing, errored or misdirected Subscription means local
    changes only reach vtdui through the (slower) reconciliation, so it is logged loudly.
    """
    problems: list[str] = []
    for template in templates if templates is not None else subscription_templates():
        wanted = _render(template, endpoint, secret)
        current = store.read("Subscription", str(wanted["id"]))
        if current is None:
            problems.append(f"Subscription/{wanted['id']} is not installed (run `vtdui setup`)")
        elif not _same(current, wanted):
            problems.append(f"Subscription/{wanted['id']} is {current.get('status')} or points elsewhere than "
                            f"{endpoint} (run `vtdui setup` with this configuration)")
    return problems


def disable_subscriptions(store: SubscriptionStore, *,
                          templates: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """Set vtdui's Subscriptions to ``off`` (HAPI stops delivering); return the ids changed.

    Prefer this to deleting them: HAPI 8.8 names a delivery channel after the Subscription id, and a
    Subscription deleted while deliveries are being retried leaves that channel closed, so the same id
    installed again later is reported ``active`` but never delivers (HAPI-2659 in HAPI's log).
    ``install_subscriptions`` turns them back on.
    """
    changed: list[str] = []
    for template in templates if templates is not None else subscription_templates():
        current = store.read("Subscription", str(template["id"]))
        if current is None or current.get("status") == "off":
            continue
        store.update({**current, "status": "off"})
        changed.append(str(template["id"]))
    return changed
