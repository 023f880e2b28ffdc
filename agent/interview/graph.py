"""The interview as a LangGraph state graph, checkpointed in SQLite so a killed chat resumes where it stopped.

One node, `turn`, asks (LangGraph's `interrupt`: the graph stops and waits for the user) and reads the
answer with `turn.answer_turn`; it loops until every question is answered. The state is the plan (as JSON),
the conversation's language and the agent's last reply, all saved after every turn in WORKSPACE/chat.sqlite.

    with Interview.open(ws.root / "chat.sqlite", thread="default") as chat:
        print(chat.pending())              # the question waiting for an answer (the first one on a new thread)
        reply = chat.send("Answer customers' questions about returns")
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from agent.interview.plan import Plan
from agent.interview.turn import answer_turn, first_question, language_of

if TYPE_CHECKING:
    from agent.interview.llm import LlmReader


class State(TypedDict):
    plan: dict
    lang: str
    reply: str
    done: bool


def _turn(reader: LlmReader | None):
    def turn(state: State) -> dict:
        from langgraph.types import interrupt

        answer = interrupt({"say": state["reply"]})
        lang = language_of(str(answer), state["lang"])
        got = answer_turn(Plan.model_validate(state["plan"]), str(answer), lang, reader)
        return {"plan": got.plan.model_dump(mode="json"), "lang": lang, "reply": got.reply, "done": got.done}

    return turn


def build(checkpointer, reader: LlmReader | None = None):
    """The compiled interview graph, saving its state with `checkpointer`; answers are read by `reader` (the LLM
    mode) when given, else deterministically."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(State)
    graph.add_node("turn", _turn(reader))
    graph.add_edge(START, "turn")
    graph.add_conditional_edges("turn", lambda s: END if s["done"] else "turn")
    return graph.compile(checkpointer=checkpointer)


@dataclass
class Reply:
    say: str
    done: bool
    plan: Plan
    lang: str = "en"
    """The conversation's language (the user's last answer's)."""


class Interview:
    """One conversation (a thread) of the interview graph, saved in a SQLite file."""

    def __init__(self, conn: sqlite3.Connection, thread: str, lang: str = "en", plan: Plan | None = None,
                 reader: LlmReader | None = None):
        from langgraph.checkpoint.sqlite import SqliteSaver

        self._conn = conn
        self._graph = build(SqliteSaver(conn), reader)
        self._cfg = {"configurable": {"thread_id": thread}}
        if not self._graph.get_state(self._cfg).values:  # a new thread: ask the first question
            if plan is None:
                from agent.interview.recommend import detect_hardware

                plan = Plan(hardware=detect_hardware())
            self._graph.invoke({"plan": plan.model_dump(mode="json"), "lang": lang, "reply": first_question(lang),
                                "done": False}, self._cfg)

    @staticmethod
    def started(db: Path, thread: str = "default") -> bool:
        """Whether `thread` has a saved conversation in `db` (without starting one)."""
        if not db.is_file():
            return False
        from langgraph.checkpoint.sqlite import SqliteSaver

        with sqlite3.connect(db, check_same_thread=False) as conn:
            return SqliteSaver(conn).get_tuple({"configurable": {"thread_id": thread}}) is not None

    @staticmethod
    def forget(db: Path, thread: str = "default") -> None:
        """Delete `thread`'s saved conversation (to start over)."""
        if not db.is_file():
            return
        from langgraph.checkpoint.sqlite import SqliteSaver

        with sqlite3.connect(db, check_same_thread=False) as conn:
            SqliteSaver(conn).delete_thread(thread)

    @classmethod
    def open(cls, db: Path, thread: str = "default", lang: str = "en", plan: Plan | None = None,
             reader: LlmReader | None = None) -> Interview:
        """The conversation `thread` in `db`; a new one starts from `plan` (default: this machine's hardware,
        detected, and every other slot at its default). Answers are read by the LLM `reader` when given."""
        db.parent.mkdir(parents=True, exist_ok=True)
        return cls(sqlite3.connect(db, check_same_thread=False), thread, lang, plan, reader)

    def __enter__(self) -> Interview:
        return self

    def __exit__(self, *exc) -> None:
        self._conn.close()

    def state(self) -> Reply:
        values = self._graph.get_state(self._cfg).values
        return Reply(values["reply"], values["done"], Plan.model_validate(values["plan"]), values["lang"])

    def pending(self) -> str:
        """What the agent last said: the question waiting for an answer (or the plan, when done)."""
        return self.state().say

    def send(self, answer: str) -> Reply:
        """The user's answer in, the agent's reply out (saved before it returns)."""
        from langgraph.types import Command

        now = self.state()
        if now.done:
            return now
        self._graph.invoke(Command(resume=answer), self._cfg)
        return self.state()
