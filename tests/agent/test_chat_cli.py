"""`onboard chat` through the real CLI with scripted input: a whole interview, a chat closed midway and
resumed, and the plan file never written over without --force."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agent.cli import app
from agent.interview.plan import load

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def _chat(ws: Path, lines: list[str], *args: str):
    """The chat up to the plan (--no-run: carrying it out is tests/agent/test_transcripts.py's)."""
    return runner.invoke(app, ["chat", "-w", str(ws), "--no-run", *args], input="".join(f"{x}\n" for x in lines))


def test_a_chat_closed_midway_resumes_and_writes_the_plan(tmp_path):
    ws = tmp_path / "ws"
    r = _chat(ws, ["回答客户关于退货的问题", "中英文"], "--lang", "zh")  # input ends: like closing the terminal
    assert r.exit_code == 0 and r.output.startswith("这个助手要做什么") and "--resume` continues" in r.output
    assert not (ws / "plan.yaml").exists()

    r = _chat(ws, ["hello"])
    assert r.exit_code == 1 and "pass --resume to continue it, or --new" in r.output

    r = _chat(ws, [str(DOCS), "tiny", "dpo", "90分钟", "好的", "本机", "开始"], "--resume")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("好的：languages = en, zh")  # the pending question's context, shown again
    assert "plan saved:" in r.output
    plan = load(ws / "plan.yaml")
    assert plan.purpose == "回答客户关于退货的问题" and plan.stage == "dpo" and plan.time_budget_hours == 1.5
    assert plan.deploy == "local" and plan.docs == DOCS


def test_a_plan_is_not_written_over_without_force(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "plan.yaml").write_text("purpose: keep me\n", encoding="utf-8")
    answers = ["Answer staff questions", "English", str(DOCS), "tiny", "1", "3 hours", "no", "none", "yes"]
    r = _chat(ws, answers)
    assert r.exit_code == 1 and "pass --resume --force" in r.output
    assert load(ws / "plan.yaml").purpose == "keep me"
    r = _chat(ws, [], "--resume", "--force")
    assert r.exit_code == 0 and load(ws / "plan.yaml").purpose == "Answer staff questions"
    r = _chat(ws, answers[:1], "--new")
    assert r.exit_code == 0 and "Noted: purpose = Answer staff questions" in r.output


def test_bad_options_are_named(tmp_path):
    assert "choose en or zh" in _chat(tmp_path, [], "--lang", "fr").output
    assert "pass one of them" in _chat(tmp_path, [], "--resume", "--new").output
