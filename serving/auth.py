"""Who may call the server, and how often: API keys (serving/keys.py) and per-key rate limits.

Once the key store holds a key, every request but the health checks needs `Authorization: Bearer onb-…`: a
missing or wrong key gets 401 (OpenAI's shape and codes), before the body is read or a queue place taken. A
key over its requests or tokens per minute gets 429 with Retry-After and OpenAI's `x-ratelimit-*` headers.
Tokens are counted after each answer (its usage: prompt and completion, or the tokens embedded), over a
sliding minute, so a key over its budget waits until enough of the last minute's tokens age out. Limits are
per server process. Keys are never logged; a request's key name is (`request.state.api_key`).
"""

from __future__ import annotations

import math
import time
from collections import deque

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.keys import ApiKey, KeyStore
from serving.limits import send_error
from serving.protocol import ErrorInfo
from serving.routes import page

OPEN_PATHS = {"/healthz", "/readyz", *page.PATHS}
"""Paths that never ask for a key: a load balancer's probes carry none, and the chat page asks for one."""
WINDOW = 60.0


class RateLimiter:
    """Requests and tokens per key over the last minute (in memory, per process)."""

    def __init__(self) -> None:
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, deque[tuple[float, int]]] = {}

    def over(self, key: ApiKey, now: float | None = None) -> tuple[str, float] | None:
        """('requests' or 'tokens', seconds until the key may ask again) when `key` is over a limit, else None;
        an admitted request is counted."""
        now = time.monotonic() if now is None else now
        asked = self._requests.setdefault(key.id, deque())
        used = self._tokens.setdefault(key.id, deque())
        while asked and asked[0] <= now - WINDOW:
            asked.popleft()
        while used and used[0][0] <= now - WINDOW:
            used.popleft()
        if key.rpm is not None and len(asked) >= key.rpm:
            return "requests", asked[0] + WINDOW - now
        if key.tpm is not None and sum(n for _, n in used) >= key.tpm:
            total, wait = sum(n for _, n in used), 0.0
            for t, n in used:  # the oldest tokens age out first
                total -= n
                wait = t + WINDOW - now
                if total < key.tpm:
                    break
            return "tokens", wait
        asked.append(now)
        return None

    def remaining(self, key: ApiKey) -> int | None:
        return None if key.rpm is None else max(0, key.rpm - len(self._requests.get(key.id, ())))

    def charge(self, key: ApiKey | None, tokens: int, now: float | None = None) -> None:
        """Count `tokens` an answer to `key` used (no key: nothing to count)."""
        if key is not None and key.tpm is not None and tokens > 0:
            self._tokens.setdefault(key.id, deque()).append((time.monotonic() if now is None else now, tokens))


def charge(request, tokens: int) -> None:
    """Count an answer's tokens against the key that asked (routes call this with the answer's usage)."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.charge(getattr(request.state, "api_key", None), tokens)


class KeyCheck:
    """Pure ASGI: the key check and the rate limits, before anything reads the body."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state if "app" in scope else None
        store: KeyStore | None = getattr(state, "keys", None)
        if scope["type"] != "http" or store is None or scope["path"] in OPEN_PATHS or not store.required():
            await self.app(scope, receive, send)
            return
        key = _key(scope, store)
        if isinstance(key, ErrorInfo):
            await send_error(send, 401, key, [(b"www-authenticate", b'Bearer realm="onboard"')])
            return
        limiter: RateLimiter = state.rate_limiter
        over = limiter.over(key)
        if over is not None:
            kind, wait = over
            limit = key.rpm if kind == "requests" else key.tpm
            retry = max(1, math.ceil(wait))
            await send_error(send, 429, ErrorInfo(
                message=f"Rate limit reached for key {key.name!r} on {kind} per minute: limit {limit}. Please "
                        f"try again in {retry} s.", type=kind, code="rate_limit_exceeded"),
                [(b"retry-after", str(retry).encode()), (f"x-ratelimit-limit-{kind}".encode(), str(limit).encode()),
                 (f"x-ratelimit-remaining-{kind}".encode(), b"0"),
                 (f"x-ratelimit-reset-{kind}".encode(), f"{retry}s".encode())])
            return
        scope.setdefault("state", {})["api_key"] = key
        headers = [] if key.rpm is None else [(b"x-ratelimit-limit-requests", str(key.rpm).encode()),
                                              (b"x-ratelimit-remaining-requests",
                                               str(limiter.remaining(key)).encode())]

        async def with_limits(message) -> None:
            if message["type"] == "http.response.start" and headers:
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, with_limits)


def _key(scope: Scope, store: KeyStore) -> ApiKey | ErrorInfo:
    """The request's active key, or the 401 error saying what is wrong."""
    auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").strip()
    scheme, _, secret = auth.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return ErrorInfo(message="You didn't provide an API key. Send it in an Authorization header: "
                                 "`Authorization: Bearer onb-...` (`onboard keys create NAME` makes one).",
                         type="invalid_request_error")
    key = store.find(secret.strip())
    if key is None:
        shown = secret.strip()[:8] + "…" if len(secret.strip()) > 8 else "…"
        return ErrorInfo(message=f"Incorrect API key provided: {shown} (unknown, or revoked). `onboard keys "
                                 "list` shows the keys of this server.", type="invalid_request_error",
                         code="invalid_api_key")
    return key
