"""Request-size limit that holds for every body: one with a Content-Length over the limit is refused before
it is read, and one sent in chunks (no Content-Length) is counted as it arrives and refused at the byte that
crosses the limit, so neither reaches JSON parsing or the model.

Pure ASGI (not an `@app.middleware("http")` function), because only `receive` sees a chunked body's bytes.
The limit is read per request from `app.state.settings.max_request_bytes`.
"""

from __future__ import annotations

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
    body = ErrorResponse(error=ErrorInfo(message=f"request body over {limit} bytes", type="invalid_request_error",
                                         code="request_too_large")).model_dump_json().encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
