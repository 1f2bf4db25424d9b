"""Fault injection on the FHIR port: for the next N requests matching a route, misbehave on purpose.

A rule matches ``"<METHOD> <path>"`` with shell-style wildcards, e.g. ``"GET /fhir/DocumentReference*"`` or
``"* /oauth/token"`` (a pattern without a method matches every method). Actions:

* ``status``: answer ``status`` (500, 503, 429 ...) with an OperationOutcome; ``retry_after`` adds the header;
* ``delay``: read the request, wait ``delay`` seconds, then answer normally (``status`` may be combined);
  a request whose client disconnected meanwhile is not handled at all (as a real server does not act on
  a request whose client went away before it got to it): it is recorded with status 499, nothing stored;
* ``drop``: close the TCP connection without any answer;
* ``expire-token``: make the presented bearer token expire, then answer normally (so: 401);
* ``body``: answer ``body`` (any text: malformed JSON, a wrong shape, a huge document ...) with ``status``
  (default 200) and ``content_type`` (default ``application/fhir+json``) instead of the real answer, e.g.
  ``{"route": "GET /fhir/DocumentReference/dec-X", "action": "body", "status": 200, "body": "{...}"}``.

The number of uses is ``count`` (or its synonym ``remaining``), 1 by default.

The requests a ``delay`` holds at a given moment are listed by :meth:`FaultInjector.held` (method, path,
the client's address and the body), e.g. to find which of several clients is blocked in a request.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FaultAction", "FaultInjector", "FaultRule", "HeldRequest"]

FaultAction = Literal["status", "delay", "drop", "expire-token", "body"]
_ACTIONS = ("status", "delay", "drop", "expire-token", "body")
#: Largest ``body`` a fault may serve (room for the oversized-response tests).
MAX_FAULT_BODY = 96 * 1024 * 1024


@dataclass
class FaultRule:
    """One armed fault.

    Attributes:
        id: rule number.
        route: ``"<METHOD> <path glob>"`` or ``"<path glob>"``.
        action: what to do.
        remaining: requests still affected.
        status: HTTP status for ``status`` (and optionally ``delay``).
        retry_after: ``Retry-After`` seconds, if any.
        delay: seconds to wait for ``delay``.
        body: the raw answer of ``body`` (UTF-8 encoded when sent).
        content_type: its ``Content-Type``.
    """

    id: int
    route: str
    action: FaultAction
    remaining: int
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    body: str | None = None
    content_type: str = "application/fhir+json"

    def matches(self, method: str, path: str) -> bool:
        """Tell whether the rule applies to this request."""
        method_glob, sep, path_glob = self.route.partition(" ")
        if not sep:
            method_glob, path_glob = "*", self.route
        return fnmatch.fnmatchcase(method.upper(), method_glob.upper()) and fnmatch.fnmatchcase(path, path_glob)

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {"id": self.id, "route": self.route, "action": self.action, "remaining": self.remaining,
                "status": self.status, "retry_after": self.retry_after, "delay": self.delay,
                "content_type": self.content_type if self.action == "body" else None,
                "body_length": len(self.body) if self.body is not None else None}


@dataclass(frozen=True)
class HeldRequest:
    """A request a ``delay`` fault is holding.

    Attributes:
        rule_id: the rule that holds it.
        method: HTTP method.
        path: request path.
        client: the client's ``(host, port)``, when the server knows it.
        since: ``time.monotonic()`` when the hold began (its body had been read).
        body: the request body (parsed JSON, or text).
    """

    rule_id: int
    method: str
    path: str
    client: tuple[str, int] | None
    since: float
    body: Any


class FaultInjector:
    """The armed faults, thread-safe; each match consumes one use of the first matching rule."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._held: dict[int, HeldRequest] = {}
        self._hold_ids = itertools.count(1)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Arm a rule from its JSON description.

        Raises:
            ValueError: the description is incomplete or inconsistent (message says what to fix).
        """
        route = spec.get("route")
        if not isinstance(route, str) or not route.strip():
            raise ValueError("'route' is required, e.g. \"GET /fhir/DocumentReference*\"")
        count = spec.get("count", spec.get("remaining", 1))
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("'count' must be a positive integer")
        status = spec.get("status")
        action = spec.get("action") or ("status" if status is not None else None)
        if action not in _ACTIONS:
            raise ValueError(f"'action' must be one of {', '.join(_ACTIONS)} (or give 'status')")
        if action == "body":
            return self._add_body(route.strip(), count, spec)
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError("'status' must be an HTTP error status (400-599)")
        if action == "status" and status is None:
            raise ValueError("'status' is required for action 'status'")
        delay = spec.get("delay", 0)
        retry_after = spec.get("retry_after")
        if not isinstance(delay, int | float) or delay < 0 or delay > 600:
            raise ValueError("'delay' must be a number of seconds between 0 and 600")
        if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
            raise ValueError("'retry_after' must be a non-negative number of seconds")
        if action == "delay" and not delay:
            raise ValueError("'delay' (seconds) is required for action 'delay'")
        kind: FaultAction = "status" if action == "status" else "delay" if action == "delay" else \
            "drop" if action == "drop" else "expire-token"
        rule = FaultRule(next(self._ids), route.strip(), kind, count, status,
                         float(retry_after) if retry_after is not None else None, float(delay))
        with self._lock:
            self._rules.append(rule)
        return rule

    def _add_body(self, route: str, count: int, spec: dict[str, Any]) -> FaultRule:
        status = spec.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            raise ValueError("'status' must be an HTTP status (200-599)")
        body = spec.get("body")
        if not isinstance(body, str):
            raise ValueError("'body' (the raw answer, as a string) is required for action 'body'")
        if len(body) > MAX_FAULT_BODY:
            raise ValueError(f"'body' is at most {MAX_FAULT_BODY} characters")
        content_type = spec.get("content_type", "application/fhir+json")
        if not isinstance(content_type, str) or not content_type.strip() or "\n" in content_type:
            raise ValueError("'content_type' must be a one-line media type")
        rule = FaultRule(next(self._ids), route, "body", count, status, body=body, content_type=content_type.strip())
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """Consume one use of the first rule matching the request; ``None`` when no rule applies."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.matches(method, path):
                    rule.remaining -= 1
                    snapshot = FaultRule(rule.id, rule.route, rule.action, rule.remaining, rule.status,
                                         rule.retry_after, rule.delay, rule.body, rule.content_type)
                    self._rules = [r for r in self._rules if r.remaining > 0]
                    return snapshot
        return None

    def rules(self) -> list[FaultRule]:
        """Rules still armed."""
        with self._lock:
            return list(self._rules)

    def clear(self) -> None:
        """Disarm every rule (requests already held stay held until their delay ends)."""
        with self._lock:
            self._rules.clear()

    def hold(self, rule: FaultRule, method: str, path: str, client: tuple[str, int] | None, body: Any) -> int:
        """Note that ``rule`` holds a request now; return the handle for :meth:`release`."""
        with self._lock:
            handle = next(self._hold_ids)
            self._held[handle] = HeldRequest(rule.id, method, path, client, time.monotonic(), body)
        return handle

    def release(self, handle: int) -> None:
        """The held request's delay is over."""
        with self._lock:
            self._held.pop(handle, None)

    def held(self) -> list[HeldRequest]:
        """Requests held by a ``delay`` right now, oldest first."""
        with self._lock:
            return sorted(self._held.values(), key=lambda h: h.since)
