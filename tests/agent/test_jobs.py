"""Training as a background job (agent/jobs.py) and what a user says to it (agent/interview/commands.py): a real
tiny run started, found again by another chat, asked how it goes, stopped at a checkpoint and resumed."""

from __future__ import annotations

import time

import pytest

from agent.interview.commands import job_command
from agent.jobs import TrainingJob
from training.config import TrainConfig


@pytest.mark.parametrize(("text", "command"), [
    ("how is it going?", "status"), ("How's it going", "status"), ("进度怎么样", "status"), ("还要多久？", "status"),
    ("pause", "pause"), ("暂停一下", "pause"), ("stop", "stop"), ("停止训练", "stop"), ("continue", "resume"),
    ("继续吧", "resume"), ("don't stop", None), ("不要停止", None), ("hello", None), ("好的", None)])
def test_what_a_user_says_while_training(text, command):
    assert job_command(text) == command


def _wait(predicate, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_a_job_runs_apart_is_found_again_stops_at_a_checkpoint_and_resumes(tmp_path, tiny_base, workspace):
    data = workspace / "data" / "sft"
    cfg = TrainConfig(base_model=str(tiny_base), train_file=data / "train.jsonl", output_dir=tmp_path / "run",
                      method="lora", max_steps=400, batch_size=2, learning_rate=1e-3, evaluate=False, report_to=[],
                      check_eos=False, save_steps=10**6)
    job = TrainingJob.start(cfg, planned_steps=400)
    first = job.status("en")
    assert job.running() and (first.startswith("loading the model") or first.startswith("step ")), first
    _wait(lambda: job.steps_done()[0] >= 2 or not job.running())
    assert job.running(), job.result()
    assert sorted(p.name for p in cfg.output_dir.parent.iterdir()) == ["run", "run.job"]  # the run's folder is its own
    again = TrainingJob.find(cfg.output_dir)  # as a chat opened later finds it
    assert again is not None and again.pid == job.pid and again.planned_steps == 400
    assert "of 400" in again.status("en") and "共 400 步" in again.status("zh")
    job.stop()
    assert not job.running() and TrainingJob.find(cfg.output_dir) is None
    got = job.result()
    assert got["ok"] and got["stopped_by"] == "sigterm" and (cfg.output_dir / "checkpoints").is_dir()
    stopped_at = got["steps"]

    done = TrainingJob.start(cfg.model_copy(update={"resume": True, "max_steps": stopped_at + 3}), 400)
    _wait(lambda: not done.running())
    final = done.result()
    assert final["ok"] and final["stopped_by"] is None and final["steps"] == stopped_at + 3
    assert (cfg.output_dir / "adapter").is_dir()


def test_a_failed_job_says_why(tmp_path, tiny_base, workspace):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "not a list"}\n', encoding="utf-8")
    cfg = TrainConfig(base_model=str(tiny_base), train_file=bad, output_dir=tmp_path / "run", method="lora",
                      max_steps=2, report_to=[])
    job = TrainingJob.start(cfg)
    _wait(lambda: not job.running())
    got = job.result()
    assert got["ok"] is False and "bad.jsonl" in got["error"]
