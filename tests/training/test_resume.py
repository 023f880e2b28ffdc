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
    assert proc.returncode == 0, out[-2000:]
    assert "stopped by sigterm" in out and "--resume" in out
    ckpts = sorted(run.glob("checkpoints/checkpoint-*"))
    assert ckpts and (ckpts[-1] / "trainer_state.json").exists()
    stopped_at = int(ckpts[-1].name.split("-")[1])
    assert 2 <= stopped_at < STEPS
    r = subprocess.run(_cmd(tmp_path, tiny_base, data, run, "--resume"), cwd=ROOT, env=_env(), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    assert max(_losses(run)) == STEPS and (run / "adapter").exists()
