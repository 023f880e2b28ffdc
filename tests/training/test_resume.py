"""Runs that survive: a real `onboard train` process killed with -9 midway resumes from its last
checkpoint with the same data order and ends where an uninterrupted run ends; SIGTERM saves a
checkpoint and exits cleanly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS, SAVE = 16, 4


def _cmd(tmp, base, data, out, *extra):
    return [sys.executable, "-m", "agent.cli", "train", "-w", str(tmp / "ws"), "--base", str(base), "--data",
            str(data), "--output", str(out), "--method", "lora", "--max-steps", str(STEPS), "--save-steps", str(SAVE),
            "--batch-size", "2", "--lr", "2e-3", "--report-to", "none", *extra]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}  # later rows (after resume) win


def _start_and_wait(cmd, run: Path, step: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if (run / "metrics.jsonl").exists() and max(_losses(run), default=0) >= step:
            return proc
        time.sleep(0.05)
    raise AssertionError(f"the run ended or hung before step {step}: {proc.communicate()[0][-2000:]}")


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_base, workspace):
    data = workspace / "data" / "sft" / "train.jsonl"
    ref = tmp_path / "uninterrupted"
    done = subprocess.run(_cmd(tmp_path, tiny_base, data, ref), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    run = tmp_path / "killed"
    proc = _start_and_wait(_cmd(tmp_path, tiny_base, data, run), run, 2 * SAVE + 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "adapter").exists()
    resumed = subprocess.run(_cmd(tmp_path, tiny_base, data, run, "--resume"), cwd=ROOT, env=_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]

    a, b = _losses(ref), _losses(run)
    assert max(b) == STEPS and (run / "adapter" / "adapter_model.safetensors").exists()
    assert abs(b[STEPS] - a[STEPS]) <= 0.01 * a[STEPS], (a[STEPS], b[STEPS])
    # same data order after the resume: every step's loss matches the uninterrupted run's
    assert all(abs(b[s] - a[s]) <= 0.01 * a[s] for s in range(2 * SAVE + 1, STEPS + 1)), (a, b)


def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path, tiny_base, workspace):
    data = workspace / "data" / "sft" / "train.jsonl"
    run = tmp_path / "termed"
    proc = _start_and_wait(_cmd(tmp_path, tiny_base, data, run), run, 2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-2000:]  # unfinished: not 0, so a script does not go on to merge
    assert "stopped by sigterm" in out and "--resume" in out
    ckpts = sorted(run.glob("checkpoints/checkpoint-*"))
    assert ckpts and (ckpts[-1] / "trainer_state.json").exists()
    stopped_at = int(ckpts[-1].name.split("-")[1])
    assert 2 <= stopped_at < STEPS
    r = subprocess.run(_cmd(tmp_path, tiny_base, data, run, "--resume"), cwd=ROOT, env=_env(), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    assert max(_losses(run)) == STEPS and (run / "adapter").exists()


# ---- issue 11, items 5 and 8: a run folder is continued only as the run it is, and never silently replaced

def _cli(tmp, base, data, out, *extra):
    from typer.testing import CliRunner

    from agent.cli import app

    args = ["train", "-w", str(tmp / "ws"), "--base", str(base), "--data", str(data), "--output", str(out),
            "--method", "lora", "--max-steps", "2", "--save-steps", "2", "--batch-size", "2", "--lr", "2e-3",
            "--report-to", "none", "--no-check-eos", *extra]
    r = CliRunner().invoke(app, args)
    return r.exit_code, " ".join((r.output + (r.stderr or "")).split())


def test_resume_refuses_other_settings_or_data_and_keeps_the_record(tmp_path, tiny_base, workspace):
    from training.record import Resumed, RunRecord

    data = tmp_path / "train.jsonl"
    data.write_bytes((workspace / "data" / "sft" / "train.jsonl").read_bytes())
    run = tmp_path / "run"
    code, out = _cli(tmp_path, tiny_base, data, run)
    assert code == 0, out
    record = (run / "config.json").read_bytes()

    code, out = _cli(tmp_path, tiny_base, data, run, "--resume", "--lr", "5e-4")
    assert code == 1 and "--lr 0.002 -> 0.0005" in out, out
    assert (run / "config.json").read_bytes() == record, "a refused resume leaves config.json alone"

    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]))  # the same file, one example fewer
    code, out = _cli(tmp_path, tiny_base, data, run, "--resume")
    assert code == 1 and f"--data {data} (sha256 " in out and "->" in out, out
    assert (run / "config.json").read_bytes() == record

    data.write_text("".join(lines))
    code, out = _cli(tmp_path, tiny_base, data, run, "--resume", "--max-steps", "4")  # extending a run is allowed
    assert code == 0, out
    assert max(_losses(run)) == 4
    after = RunRecord.read(run)
    assert after.config.max_steps == 4 and after.config.learning_rate == 2e-3
    assert after.resumes == [Resumed(from_step=2, changed={"--max-steps": [2, 4]})], "the record says what changed"


def test_an_interrupted_run_is_kept_unless_resume_or_force(tmp_path, tiny_base, workspace):
    data = workspace / "data" / "sft" / "train.jsonl"
    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-6").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-6" / "trainer_state.json").write_text("{}")
    old_metrics = json.dumps({"step": 6, "loss": 99.0}) + "\n"
    (run / "metrics.jsonl").write_text(old_metrics)

    code, out = _cli(tmp_path, tiny_base, data, run)
    assert code == 1 and "checkpoints up to step 6" in out and "--resume" in out and "--force" in out, out
    assert (run / "checkpoints" / "checkpoint-6" / "trainer_state.json").exists()
    assert (run / "metrics.jsonl").read_text() == old_metrics

    code, out = _cli(tmp_path, tiny_base, data, run, "--force")
    assert code == 0, out
    assert not (run / "checkpoints" / "checkpoint-6").exists()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert 99.0 not in [r.get("loss") for r in rows] and [r["step"] for r in rows if "loss" in r] == [1, 2]


def test_resume_compares_the_base_by_its_weights_and_lets_the_schedule_change():
    """Which settings --resume may change is declared per field (training/config.py, `resume_rule`)."""
    from rag.model_card import BaseModelRef
    from training.config import TrainConfig, resume_rule
    from training.record import RunRecord, resume_changes, resume_differences

    cfg = TrainConfig.make(base_model="/old/base", train_file="t.jsonl", output_dir="o", max_steps=8)

    def record(path="/old/base", sha="1" * 64, **changes):
        return RunRecord(stage="sft", config=cfg.model_copy(update=changes), train_sha256="a" * 64, train_examples=3,
                         base_model=BaseModelRef(name_or_path=path, weights_sha256=sha))

    old = record()
    assert resume_differences(old, record(path="/moved/base")) == [], "a moved base with the same weights resumes"
    assert resume_differences(old, record(sha="2" * 64)) == [
        "--base /old/base (weights sha256 111111111111) -> /old/base (weights sha256 222222222222)"]
    assert resume_differences(old, record(seed=1, lora_r=8)) == ["--lora-r 16 -> 8", "--seed 42 -> 1"]
    longer = record(max_steps=20, logging_steps=5, report_to=["none"], gradient_checkpointing=None)
    assert resume_differences(old, longer) == []
    assert resume_changes(old, longer) == {"--max-steps": [8, 20], "--logging-steps": [1, 5],
                                           "--report-to": [["tensorboard"], ["none"]]}
    assert {n for n in TrainConfig.model_fields if resume_rule(n) == "content"} == {
        "base_model", "train_file", "eval_file", "init_adapter"}
