"""The web chat page at `/`: customers ask (POST /chat, streamed, with sources, handoff and thumbs), and a
developer sets up a fine-tune by talking to the agent (/v1/interview/..., where `onboard serve` mounts it).

The page and its two files are open (no key): they hold nothing of the server's, and the page asks for a key
when the server has keys. Its script and style are files of their own, so the Content-Security-Policy allows
no inline script: text the server sends (answers, snippets) is only ever shown as text.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

FILES = {"/web/chat.js": "text/javascript; charset=utf-8", "/web/chat.css": "text/css; charset=utf-8"}
PATHS = {"/", *FILES}
"""What the page is made of: served to anyone (serving.auth's open paths)."""
_HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-cache"}


@cache
def _file(name: str) -> str:
    return resources.files("serving.web").joinpath(name).read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def page(request: Request) -> HTMLResponse:
    state = request.app.state
    keys = state.keys is not None and state.keys.required()
    setup = getattr(state, "interview_db", None) is not None  # set where the agent's interview is mounted
    html = (_file("index.html").replace("{keys}", _flag(keys)).replace("{chat}", _flag(state.chat is not None))
            .replace("{setup}", _flag(setup)))
    return HTMLResponse(html, headers=_HEADERS)


def _flag(on: bool) -> str:
    return "true" if on else "false"


@router.get("/web/chat.js")
def script() -> Response:
    return Response(_file("chat.js"), media_type=FILES["/web/chat.js"], headers=_HEADERS)


@router.get("/web/chat.css")
def style() -> Response:
    return Response(_file("chat.css"), media_type=FILES["/web/chat.css"], headers=_HEADERS)
