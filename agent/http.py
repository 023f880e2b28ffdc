"""The interview over HTTP: the same graph as `onboard chat`, one conversation per thread id, for the web
chat page's "Set up a fine-tune" mode. The agent's router is added to a FastAPI app by the agent (serving
never imports the agent): `app.include_router(router)` with `app.state.interview_db` set.

    GET  /v1/interview/threads/{thread}           the pending question, whether it is done, the plan
    POST /v1/interview/threads/{thread}/messages  {"message": "..."} -> text/event-stream:
         event: reply  data: {"say": ..., "done": ..., "plan": {...}}
         event: end    data: {}
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from agent.interview.graph import Interview, Reply
from agent.interview.llm import LlmReader

MAX_MESSAGE = 4000
"""Characters per message: an answer to an interview question, not a document."""
Thread = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

router = APIRouter(prefix="/v1/interview", tags=["interview"])
_lock = threading.Lock()
"""One answer at a time (a turn takes milliseconds): two tabs posting to one thread take turns. One lock, not
one per thread id, so ids a client makes up cannot grow the server's memory."""


class Message(BaseModel):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE)


class ReplyOut(BaseModel):
    say: str
    done: bool
    plan: dict


def _db(request: Request) -> Path:
    return request.app.state.interview_db


def _reader(request: Request) -> LlmReader | None:
    return request.app.state.interview_reader


def _out(reply: Reply) -> ReplyOut:
    return ReplyOut(say=reply.say, done=reply.done, plan=reply.plan.model_dump(mode="json"))


@router.get("/threads/{thread}")
def pending(thread: Thread, db: Annotated[Path, Depends(_db)], lang: Literal["en", "zh"] = "en") -> ReplyOut:
    """The conversation so far: what the agent last said (a new thread starts with the first question)."""
    with _lock, Interview.open(db, thread, lang) as talk:  # (no reader: showing the state reads no answer)
        return _out(talk.state())


@router.post("/threads/{thread}/messages")
def send(thread: Thread, body: Message, db: Annotated[Path, Depends(_db)],
         reader: Annotated[LlmReader | None, Depends(_reader)]) -> StreamingResponse:
    """Answer the pending question; the reply comes as server-sent events (saved before it is sent)."""
    with _lock, Interview.open(db, thread, reader=reader) as talk:
        reply = _out(talk.send(body.message))

    def events():
        yield f"event: reply\ndata: {json.dumps(reply.model_dump(), ensure_ascii=False)}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def mount(app: FastAPI, db: Path) -> None:
    """Serve the interview from `app`, its conversations saved in `db` (`onboard serve` mounts it on the model
    server: serving.app.create_app's `extend`). Answers are read by the LLM of ONBOARD_AGENT_BASE_URL when set."""
    from agent.interview.llm import LlmReader

    app.state.interview_db = db
    app.state.interview_reader = LlmReader.from_env()
    app.include_router(router)


def create_app(db: Path) -> FastAPI:
    """A FastAPI app serving only the interview."""
    app = FastAPI(title="Onboard interview")
    mount(app, db)
    return app
