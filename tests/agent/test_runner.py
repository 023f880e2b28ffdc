"""Carrying out a plan (agent/runner.py) for real on the tiny model: every step, the confirmations that stop it,
a time budget that caps the steps, a replay that redoes nothing, and `onboard run plan.yaml --serve` answering
a client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agent import runner
from agent.errors import AgentError
from agent.interview.plan import Hardware, Plan, Training, save
from rag.workspace import Workspace
from tests.serving.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ws(tmp_path, workspace, tiny_base) -> Workspace:
    """A copy of the shared workspace (documents ingested, SFT data built) with the tiny base in place."""
    root = tmp_path / "ws"
    shutil.copytree(workspace, root)
    shutil.copytree(tiny_base, root / "base" / "tiny")
    return Workspace(root)


def _plan(docs: Path, max_length: int = 512, **kw) -> Plan:
    training = Training(epochs=1, learning_rate=3e-3, batch_size=4, gradient_accumulation_steps=1,
                        max_length=max_length)
    return Plan(purpose="shop", docs=docs, base_model="tiny", method="lora", training=training,
                hardware=Hardware(device="cpu", memory_gib=8), **kw)


class Recorder(runner.Hooks):
    """Hooks that keep what the runner said and asked, and answer yes unless `answers` says otherwise."""

    def __init__(self, answers: dict[str, bool] | None = None):
        self.said: list[str] = []
        self.asked: list[str] = []
        self.answers = answers or {}
        super().__init__(say=self.said.append, ask=self._ask)

    def _ask(self, question: str) -> bool:
        self.asked.append(question)
        return next((v for k, v in self.answers.items() if k in question), True)


def test_a_plan_runs_every_step_and_a_replay_redoes_none(ws, docs_dir):
    hooks = Recorder()
    result = runner.run(_plan(docs_dir), ws, hooks, eval_limit=3)
    said = "\n".join(hooks.said)
    assert "dataset" in said and "Q: " in said and "A: " in said  # samples shown before training
    assert "training will take about" in said and result.estimate_s > 0
    assert hooks.asked == ["Train on this dataset?", "Start training?"]
    assert result.steps > 0 and (ws.run_dir("sft") / "adapter").is_dir() and result.model == ws.merged_model
    assert (result.report / "eval.md").is_file() and "tuned+rag" in said and "key facts" in said
    assert result.gate_passed is not None and ("gate passed" in said or "gate FAILED" in said)

    again = Recorder()
    second = runner.run(_plan(docs_dir), ws, again, eval_limit=3)
    said = "\n".join(again.said)
    assert "already trained" in said and "already merged" in said and "timing" not in said
    assert second.model == result.model and again.asked == ["Train on this dataset?"]


def test_no_to_the_dataset_trains_nothing(ws, docs_dir):
    hooks = Recorder({"Train on this dataset?": False})
    with pytest.raises(runner.PlanStopped, match="stopped before training"):
        runner.run(_plan(docs_dir), ws, hooks)
    assert not ws.run_dir("sft").exists()


@pytest.mark.slow  # with the English transcript (test_transcripts.py, slow too), which caps its steps in a chat
def test_a_time_budget_shorter_than_the_estimate_caps_the_steps(ws, docs_dir):
    plan = _plan(docs_dir, time_budget_hours=0.001, evaluate=False).model_copy(
        update={"training": Training(epochs=30, learning_rate=3e-3, batch_size=4, max_length=512)})
    hooks = Recorder()
    result = runner.run(plan, ws, hooks)
    capped = next(q for q in hooks.asked if "over your budget" in q)
    assert f"train {result.steps} steps instead" in capped
    assert 1 <= result.steps < 30 and "served on faith" in "\n".join(hooks.said)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["raft", "dpo", "cpt"])
def test_every_stage_a_plan_can_name_trains(ws, docs_dir, stage):
    shutil.rmtree(ws.data_dir("sft"))
    hooks = Recorder()
    # RAFT prompts hold the oracle and 3 distractors under the grounded system prompt: over 512 tiny tokens
    result = runner.run(_plan(docs_dir, stage=stage, max_length=1024 if stage == "raft" else 512), ws, hooks,
                        eval_limit=2)
    said = "\n".join(hooks.said)
    assert result.steps > 0 and (ws.run_dir(stage) / "adapter").is_dir() and result.dataset == ws.train_file(stage)
    assert (result.report / "eval.md").is_file()
    # DPO and CPT data hold no questions to score: an SFT set is built for the evaluation's
    assert ("building an SFT dataset for the evaluation's questions" in said) == (stage != "raft")


def test_tone_examples_it_cannot_use_are_refused_by_name(ws, docs_dir):
    with pytest.raises(AgentError, match="tone_examples"):
        runner.run(_plan(docs_dir, tone_examples=("Dear customer, ...",)), ws, Recorder())


def test_a_gpu_plan_is_refused_on_a_machine_without_one(ws, docs_dir):
    plan = _plan(docs_dir).model_copy(update={"hardware": Hardware(device="cuda", gpus=2, gpu_memory_gib=24)})
    with pytest.raises(AgentError, match="made for 2 GPU"):
        runner.run(plan, ws, Recorder())


def test_onboard_run_replays_a_plan_file_and_serves(ws, docs_dir, tmp_path):
    """The real CLI in a subprocess, as a user runs it: the plan file in, a server answering at the end."""
    from openai import OpenAI

    plan_file = tmp_path / "plan.yaml"
    save(_plan(docs_dir, evaluate=False), plan_file)
    port = free_port()
    env = {**os.environ, "ONBOARD_PORT": str(port), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", str(plan_file), "-w", str(ws.root), "--serve"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, tmp_path / "run.log", timeout=600)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x")
        r = client.chat.completions.create(model=client.models.list().data[0].id, max_tokens=16,
                                           messages=[{"role": "user", "content": "How long do I have to return an item?"}])
        assert r.choices[0].message.content is not None and (r.model_extra or {}).get("sources")
        # the interview is served beside the model, for the web page's "Set up a fine-tune"
        setup = httpx.get(f"http://127.0.0.1:{port}/v1/interview/threads/web", timeout=60).json()
        assert setup["say"].startswith("What should the assistant do") and not setup["done"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    out = (tmp_path / "run.log").read_text()
    assert "training will take about" in out and "not evaluated" in out and f"model: {ws.merged_model}" in out

