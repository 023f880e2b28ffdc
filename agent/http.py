"""The interview over HTTP: the same graph as `onboard chat`, one conversation per thread id, for the web
chat page's "Set up a fine-tune" mode. The agent's router is added to a FastAPI app by the agent (serving
never imports the agent): `app.include_router(router)` with `app.state.interview_db` set.

    GET  /v1/interview/threads/{thread}           the pending question, whether it is done, the plan
    POST /v1/interview/threads/{thread}/messages  {"message": "..."} -> text/event-stream:
         event: reply  data: {"say": ..., "done": ..., "plan": {...}, "run": null}
         event: end    data: {}
    GET  /v1/interview/threads/{thread}/run       the confirmed plan being carried out -> text/event-stream:
         id: N  event: say       data: {"say": "ingested 12 documents ..."}
         id: N  event: progress  data: {"progress": "training", "done": 30, "total": 60}
         id: N  event: end       data: {"end": {"ok": true, "model": ..., "gate_passed": ..., "serve": ...}}
         (Last-Event-ID, or ?after=N, continues after event N)
    POST /v1/interview/threads/{thread}/run       start it again (it resumes where it stopped)
    POST /v1/interview/threads/{thread}/run/stop  stop it (training saves a checkpoint first)

When the user confirms the plan ("Start with this plan?" -> yes) its run starts by itself (agent/setups.py: a
process of its own, in SERVER_WORKSPACE/setups/THREAD/, one at a time per server), and the reply's `run` is
the path to follow it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from agent.interview.graph import Interview, Reply
from agent.interview.llm import LlmReader
from agent.setups import Setup, SetupBusy
from serving.openapi import errors, sse

POLL_S = 0.5
"""How often a followed run's events are read."""
KEEPALIVE_S = 15.0
"""A comment line after this long without an event, so proxies keep the stream open."""
STOP_WAIT_S = 30.0
"""How long POST .../run/stop waits for the run to end before it answers."""
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
    run: str | None = None
    """Where to follow the plan's run (GET), once it started."""


def _db(request: Request) -> Path:
    return request.app.state.interview_db


def _reader(request: Request) -> LlmReader | None:
    return request.app.state.interview_reader


def _setups(request: Request) -> Path:
    return request.app.state.interview_setups


def _out(reply: Reply, thread: str, setups: Path) -> ReplyOut:
    started = reply.done and Setup.find(setups / thread) is not None
    return ReplyOut(say=reply.say, done=reply.done, plan=reply.plan.model_dump(mode="json"),
                    run=_run_path(thread) if started else None)


def _run_path(thread: str) -> str:
    return f"{router.prefix}/threads/{thread}/run"


def _start(thread: str, reply: Reply, setups: Path) -> None:
    """Carry out the confirmed plan in SETUPS/THREAD (agent/setups.py), one setup at a time on this server.

    Raises:
        SetupBusy: another thread's setup is running.
    """
    others = [p for p in setups.iterdir() if p.is_dir() and p.name != thread] if setups.is_dir() else []
    Setup.start(reply.plan, setups / thread, reply.lang, busy=others)


@router.get("/threads/{thread}", responses=errors(400))
def pending(thread: Thread, db: Annotated[Path, Depends(_db)], setups: Annotated[Path, Depends(_setups)],
            lang: Literal["en", "zh"] = "en") -> ReplyOut:
    """The conversation so far: what the agent last said (a new thread starts with the first question)."""
    with _lock, Interview.open(db, thread, lang) as talk:  # (no reader: showing the state reads no answer)
        return _out(talk.state(), thread, setups)


@router.post("/threads/{thread}/messages", response_class=StreamingResponse,
             responses={**sse("a `reply` event (say, done, plan, run), then `end`"), **errors(400, 413)})
def send(thread: Thread, body: Message, db: Annotated[Path, Depends(_db)],
         reader: Annotated[LlmReader | None, Depends(_reader)],
         setups: Annotated[Path, Depends(_setups)]) -> StreamingResponse:
    """Answer the pending question; the reply comes as server-sent events (saved before it is sent). The answer
    that confirms the plan starts its run."""
    with _lock, Interview.open(db, thread, reader=reader) as talk:
        was_done = talk.state().done
        reply = talk.send(body.message)
        say = reply.say
        if reply.done and not was_done:
            try:
                _start(thread, reply, setups)
                say += {"en": f"\nFollow it at GET {_run_path(thread)}",
                        "zh": f"\n进度见 GET {_run_path(thread)}"}[reply.lang]
            except SetupBusy as e:
                say += {"en": f"\nNot started yet: {e}. Start it later with POST {_run_path(thread)}",
                        "zh": f"\n还没有开始：{e}。稍后用 POST {_run_path(thread)} 开始"}[reply.lang]
        out = _out(reply, thread, setups).model_copy(update={"say": say})

    def events():
        yield f"event: reply\ndata: {json.dumps(out.model_dump(), ensure_ascii=False)}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _setup(thread: str, setups: Path) -> Setup:
    found = Setup.find(setups / thread)
    if found is None:
        raise HTTPException(404, f"thread {thread!r} has no run: answer the interview until the plan is confirmed")
    return found


@router.get("/threads/{thread}/run", response_class=StreamingResponse,
            responses={**sse("`say`, `progress` and, last, `end` events, each with its id"), **errors(400, 404)})
def follow(thread: Thread, setups: Annotated[Path, Depends(_setups)], after: Annotated[int, Query(ge=0)] = 0,
           last_event_id: Annotated[int | None, Header(ge=0)] = None) -> StreamingResponse:
    """What the plan's run says and how far it is, as server-sent events until it ends (event `end`)."""
    setup = _setup(thread, setups)
    start = last_event_id if last_event_id is not None else after

    def events():
        seen, quiet = start, time.monotonic()
        while True:
            new = setup.events(after=seen)
            for event in new:
                seen += 1
                kind = next(k for k in ("end", "progress", "say") if k in event)
                yield f"id: {seen}\nevent: {kind}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
                if kind == "end":
                    return
            if new:
                quiet = time.monotonic()
            elif time.monotonic() - quiet > KEEPALIVE_S:
                quiet = time.monotonic()
                yield ": still running\n\n"
            time.sleep(POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/threads/{thread}/run", status_code=202, responses=errors(400, 409))
def restart(thread: Thread, db: Annotated[Path, Depends(_db)], setups: Annotated[Path, Depends(_setups)]) -> ReplyOut:
    """Start the confirmed plan's run again (after a stop, a failure or a busy server); it resumes."""
    with _lock, Interview.open(db, thread) as talk:
        reply = talk.state()
        if not reply.done:
            raise HTTPException(409, f"thread {thread!r} has no confirmed plan yet: answer the interview first")
        running = Setup.find(setups / thread)
        if running is not None and running.running():
            raise HTTPException(409, f"thread {thread!r}'s run is already running: follow it at GET "
                                     f"{_run_path(thread)}")
        try:
            _start(thread, reply, setups)
        except SetupBusy as e:
            raise HTTPException(409, str(e)) from None
        return _out(reply, thread, setups)


@router.post("/threads/{thread}/run/stop", responses=errors(400, 404))
def stop(thread: Thread, setups: Annotated[Path, Depends(_setups)]) -> dict:
    """Stop the plan's run: training finishes its step and saves a checkpoint (POST .../run resumes). Answers
    once the run has ended, or after STOP_WAIT_S with `ended` false (its events then say when it ends)."""
    setup = _setup(thread, setups)
    was = setup.running()
    ended = setup.stop(timeout=STOP_WAIT_S)
    return {"stopped": was, "ended": ended}


def mount(app: FastAPI, db: Path, setups: Path | None = None) -> None:
    """Serve the interview from `app`, its conversations saved in `db` and its confirmed plans carried out in
    `setups` (default: a "setups" folder beside `db`); `onboard serve` mounts it on the model server
    (serving.app.create_app's `extend`). Answers are read by the LLM of ONBOARD_AGENT_BASE_URL when set."""
    from agent.interview.llm import LlmReader

    app.state.interview_db = db
    app.state.interview_setups = setups or db.parent / "setups"
    app.state.interview_reader = LlmReader.from_env()
    app.include_router(router)


def create_app(db: Path, setups: Path | None = None) -> FastAPI:
    """A FastAPI app serving only the interview."""
    app = FastAPI(title="Onboard interview")
    mount(app, db, setups)
    return app
