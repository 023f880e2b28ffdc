"""Prometheus metrics (GET /metrics, prometheus_client), a request id on every response, and the JSON access log.

    onboard_requests_total{route,method,status}       onboard_request_seconds{route}   (histogram)
    onboard_time_to_first_token_seconds               onboard_retrieval_seconds        (histograms)
    onboard_tokens_total{kind=prompt|completion|embedded}
    onboard_errors_total{type,code}                   onboard_queue_depth              (chat requests in the server)

Each app has its own registry (several apps in one process, as in tests, do not collide). Routes are labelled
by their template (`/v1/models/{model_id}`), unknown paths as "other", so a scan of random URLs cannot grow the
label set. The request id is the client's `X-Request-Id` when it is a short plain token, else a new one; it is
sent back on the response and put in the request's state for logs. Bodies are never read for metrics, except
an error response's own JSON, for its type and code.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.limits import chat_requests
from serving.logs import access

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The server's metrics, in a registry of their own."""

    def __init__(self, state) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("onboard_requests", "HTTP requests answered.", ["route", "method", "status"],
                                registry=r)
        self.latency = Histogram("onboard_request_seconds", "Time from a request's arrival to its last byte.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("onboard_time_to_first_token_seconds", "Chat: arrival to the first generated token.",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.retrieval = Histogram("onboard_retrieval_seconds", "Chat: time spent retrieving context.",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("onboard_tokens", "Tokens read and written.", ["kind"], registry=r)
        self.errors = Counter("onboard_errors", "Error responses by OpenAI error type and code.", ["type", "code"],
                              registry=r)
        queue = Gauge("onboard_queue_depth", "Chat requests in the server (answered or waiting).", registry=r)
        queue.set_function(lambda: chat_requests(state))

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def observe(request, **values: float) -> None:
    """Record a route's own measurements: ttft=seconds, retrieval=seconds, prompt=/completion=/embedded=tokens."""
    m: Metrics | None = getattr(request.app.state, "metrics", None)
    if m is None:
        return
    for name, v in values.items():
        if name in ("ttft", "retrieval"):
            getattr(m, name).observe(v)
        elif v:
            m.tokens.labels(name).inc(v)


class Observe:
    """Pure ASGI: counts and times every HTTP request, reads the type and code of error responses, and sets
    the request id."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        metrics: Metrics | None = getattr(scope["app"].state, "metrics", None)
        json_logs = scope["app"].state.settings.log_format == "json"
        t0 = time.monotonic()
        status, error_body = 500, []

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            elif message["type"] == "http.response.body" and status >= 400 and sum(map(len, error_body)) < 65536:
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            if json_logs:
                access(scope, route, status, time.monotonic() - t0)
            if metrics is not None:
                metrics.requests.labels(route, scope["method"], str(status)).inc()
                metrics.latency.labels(route).observe(time.monotonic() - t0)
                if status >= 400:
                    kind, code = _error_kind(b"".join(error_body), status)
                    metrics.errors.labels(kind, code).inc()


def _error_kind(body: bytes, status: int) -> tuple[str, str]:
    try:
        err = json.loads(body)["error"]
        return str(err.get("type") or "unknown"), str(err.get("code") or "none")
    except (ValueError, KeyError, TypeError):
        return "unknown", str(status)
