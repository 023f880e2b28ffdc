"""Limits that hold for every request: its size (BodyLimit) and how many chat requests are in the server at
once (Admission).

Request-size limit that holds for every body: one with a Content-Length over the limit is refused before
it is read, and one sent in chunks (no Content-Length) is counted as it arrives and refused at the byte that
crosses the limit, so neither reaches JSON parsing or the model.

Pure ASGI (not an `@app.middleware("http")` function), because only `receive` sees a chunked body's bytes.
The limit is read per request from `app.state.settings.max_request_bytes`.
"""

from __future__ import annotations

import math
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.protocol import ErrorInfo, ErrorResponse


class BodyLimit:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = scope["app"].state.settings.max_request_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > limit:
                await _too_large(send, limit)
                return
            await self.app(scope, receive, send)  # the server reads no more than Content-Length bytes
            return
        # chunked (or no length given): read the whole body first, counting, then hand it on
        body: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit)
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


async def _too_large(send: Send, limit: int) -> None:
    await send_error(send, 413, ErrorInfo(message=f"request body over {limit} bytes", type="invalid_request_error",
                                      code="request_too_large"), [(b"connection", b"close")])


async def send_error(send: Send, status: int, info: ErrorInfo, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer with the one error shape (ErrorResponse), from below the app's exception handlers."""
    body = ErrorResponse(error=info).model_dump_json().encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


GENERATING = {"/v1/chat/completions", "/chat"}
"""Paths whose requests run the model: each holds a place until its answer is sent (or its client leaves)."""


class Admission:
    """At most `settings.max_queue` chat requests in the server at once (being answered or waiting for the
    engine); one more is refused at once with 503 and a Retry-After header (seconds: how long requests have
    recently taken), so clients back off instead of piling up behind a queue that only grows. Pure ASGI: a
    streamed answer holds its place until the stream ends or its client goes away."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._took = 1.0
        """A moving average of how long an admitted request took (seconds)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in GENERATING or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        limit = state.settings.max_queue
        if chat_requests(state) >= limit:
            await _overloaded(send, limit, max(1, math.ceil(self._took)))
            return
        state.chat_requests = chat_requests(state) + 1
        t0 = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            state.chat_requests -= 1
            self._took = 0.8 * self._took + 0.2 * (time.monotonic() - t0)


def chat_requests(state) -> int:
    """Chat requests in the server now (being answered or waiting): /readyz reports a full queue."""
    return getattr(state, "chat_requests", 0)


async def _overloaded(send: Send, limit: int, retry_after: int) -> None:
    await send_error(send, 503, ErrorInfo(message=f"the server is answering {limit} chat requests already (env "
                                              f"ONBOARD_MAX_QUEUE): retry in about {retry_after} s",
                                      type="server_error", code="server_overloaded"),
                 [(b"retry-after", str(retry_after).encode())])
