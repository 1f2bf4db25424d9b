"""The webhook HAPI's REST-hook Subscriptions call when a work-list Task or a Consent changes.

With ``channel.payload = application/fhir+json`` HAPI delivers a created or updated resource as
``PUT {endpoint}/{Type}/{id}`` with the stored version as body (``POST {endpoint}`` is accepted too,
for payload-less or hand-made deliveries). The receiver:

1. authenticates HAPI with the ``X-Vtdui-Secret`` header that the Subscription's ``channel.header``
   carries (constant-time comparison; 401 otherwise);
2. hands the resource to :meth:`vtdui.emit.Emitter.enqueue_resource`, which reads the previous version
   from HAPI ``_history``, detects the change, builds and checks the resource and writes the outbox item;
3. answers **200 only after the item is committed**. If anything fails it answers 500, so HAPI delivers
   again (it retries for about a minute); beyond that, the reconciliation (:mod:`vtdui.reconcile`)
   finds the change in HAPI's history. Sending to ViaTrajectoire happens later, in the worker, so the
   answer is quick.

:func:`install_subscriptions` creates or updates the Subscriptions from the templates in
``profiles/subscriptions/*.json`` (fixed ids, so installing twice changes nothing) and waits until HAPI
has activated them. The secret is stored in the Subscription (HAPI has no other way to send it):
restrict read access to ``Subscription`` on the HAPI server.
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from vtdui.errors import ConfigError, HapiError, VtduiError
from vtdui.outbox import OutboxItem
from vtdui.profiles import profiles_dir

__all__ = [
    "HOOK_PATH",
    "SECRET_HEADER",
    "SUBSCRIPTION_TAG",
    "InstalledSubscription",
    "ResourceSink",
    "check_subscriptions",
    "create_app",
    "disable_subscriptions",
    "hook_endpoint",
    "install_subscriptions",
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
_MAX_BODY: Final = 5 * 1024 * 1024


class ResourceSink(Protocol):
    """Where delivered resources go (:class:`vtdui.emit.Emitter` is one)."""

    def enqueue_resource(self, resource: Mapping[str, Any]) -> list[OutboxItem]: ...  # noqa: D102


def _problem(status: int, code: str, text: str) -> JSONResponse:
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return JSONResponse(outcome, status_code=status, media_type="application/fhir+json")


def create_app(sink: ResourceSink, secret: str, *, path: str = HOOK_PATH,
               on_enqueued: Callable[[], None] | None = None,
               extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """Build the receiver's ASGI application.

    Args:
        sink: what turns a delivered resource into outbox items (the emitter).
        secret: the shared secret HAPI sends in ``X-Vtdui-Secret``; must not be empty.
        path: the endpoint path configured in the Subscriptions.
        on_enqueued: called after a delivery produced outbox items (wakes the delivery worker).
        extra_routes: more routes served on the same port (``vtdui run`` adds ``/metrics`` and ``/health``).

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
            return Response(status_code=200)  # a deleted work-list item reports no status
        raw = await request.body()
        if len(raw) > _MAX_BODY:
            return _problem(413, "too-costly", "body too large")
        if not raw.strip():
            # a payload-less notification: nothing to read; the reconciliation picks the change up
            return JSONResponse({"queued": []})
        try:
            resource = json.loads(raw)
        except ValueError:
            return _problem(400, "structure", "the body is not JSON")
        if not isinstance(resource, dict) or resource.get("resourceType") not in _TYPES or not resource.get("id"):
            return _problem(400, "not-supported", "expected a Task or a Consent with its id")
        path_type = request.path_params.get("resource_type")
        path_id = request.path_params.get("resource_id")
        if path_type is not None and (path_type != resource["resourceType"] or
                                      (path_id is not None and path_id != str(resource["id"]))):
            return _problem(400, "invalid", f"the body is {resource['resourceType']}/{resource['id']}, "
                                            f"the URL names {path_type}/{path_id}")
        try:
            items = await run_in_threadpool(sink.enqueue_resource, resource)
        except (VtduiError, OSError, ValueError) as exc:
            # 500: HAPI delivers again; the reconciliation is the safety net after HAPI gives up
            log.warning("delivery of %s/%s not queued: %s", resource["resourceType"], resource["id"], exc)
            return _problem(500, "transient", "not queued, deliver again")
        if items and on_enqueued is not None:
            on_enqueued()
        return JSONResponse({"queued": [item.id for item in items]})

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
