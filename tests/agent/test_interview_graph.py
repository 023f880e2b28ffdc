"""The interview graph: a whole transcript through LangGraph with the SQLite checkpointer, and a chat killed
with SIGKILL mid-interview that continues where it stopped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from agent.interview.graph import Interview

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "examples" / "docs"


def test_a_transcript_through_the_graph(tmp_path):
    with Interview.open(tmp_path / "chat.sqlite") as chat:
        assert chat.pending().startswith("What should the assistant do")
        for answer in ["Answer customers about returns", "both", f"{DOCS}", "tiny", "raft", "2 hours", "yes"]:
            reply = chat.send(answer)
        assert not reply.done and "Where should it run?" in reply.say
        reply = chat.send("docker")
        assert not reply.done and "deploy: compose" in reply.say and reply.say.endswith("say what to change)")
        reply = chat.send("yes")
        assert reply.done and reply.say == "Starting."
        assert reply.plan.stage == "raft" and reply.plan.docs == DOCS and reply.plan.time_budget_hours == 2
        assert chat.send("anything more").say == reply.say  # a finished interview stays finished


def test_two_threads_do_not_mix(tmp_path):
    db = tmp_path / "chat.sqlite"
    with Interview.open(db, thread="a") as a, Interview.open(db, thread="b", lang="zh") as b:
        a.send("Answer customers about returns")
        assert b.pending().startswith("这个助手要做什么") and a.state().plan.purpose and not b.state().plan.purpose


def test_a_killed_chat_resumes_where_it_stopped(tmp_path):
    db = tmp_path / "chat.sqlite"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from agent.interview.graph import Interview
        chat = Interview.open(Path({str(db)!r}))
        chat.send("回答客户关于退货的问题")
        chat.send("中文")
        print(chat.send("在 {DOCS} 目录下").say, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == -9 and "用哪个基座模型" in run.stdout, run.stderr
    with Interview.open(db) as chat:  # a new process: everything answered before the kill is there
        assert chat.pending().endswith("或者给出模型文件夹或 .gguf 文件的路径")
        state = chat.state()
        assert state.plan.purpose == "回答客户关于退货的问题" and state.plan.languages == ("zh",)
        assert state.plan.docs == DOCS
        assert chat.send("第一个").plan.base_model == "tiny" and chat.send("第一个").plan.stage == "sft"
