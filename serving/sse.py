"""Server-sent events for the streamed OpenAI answers: frames written as bytes, sent without a timeout scope.

sse-starlette's `EventSourceResponse` keeps what a stream needs (pings, the client's disconnect cancelling the
generator, the server's shutdown); two per-chunk costs are taken out of it. A chunk's JSON never holds a CR or LF
(json.dumps escapes them), so `frame` writes it as one `data:` line straight to bytes, where sse-starlette would
build a ServerSentEvent and split its text on line breaks; and with no send timeout asked for, each send skips
the cancel scope sse-starlette opens around it (18 per answer of 16 pieces). Measured with bench/gateway_overhead.py
in bench/RESULTS.md.
"""

from __future__ import annotations

from sse_starlette import EventSourceResponse


def frame(data: str) -> bytes:
    """One event of `data` (one line: no CR or LF in it) as its bytes on the wire."""
    return b"data: " + data.encode() + b"\r\n\r\n"


class Events(EventSourceResponse):
    """`EventSourceResponse` whose sends, with no `send_timeout`, go straight to the server."""

    async def _send_with_timeout(self, send, message) -> None:
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise
