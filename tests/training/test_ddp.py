"""`onboard train --num-processes 2`: real DDP over gloo on CPU, through `accelerate launch`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


def _train(tmp, base, data, out, *extra):
    cmd = [sys.executable, "-m", "agent.cli", "train", "-w", str(tmp / "ws"), "--base", str(base), "--data",
           str(data), "--output", str(out), "--method", "lora", "--max-steps", "6", "--batch-size", "2",
           "--lr", "2e-3", "--report-to", "none", *extra]
    r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, tiny_base, workspace):
    data = workspace / "data" / "sft" / "train.jsonl"
    _train(tmp_path, tiny_base, data, tmp_path / "one")
    out = _train(tmp_path, tiny_base, data, tmp_path / "two", "--num-processes", "2")
    assert "launching 2 processes" in out and out.count("trained 6 steps") == 1  # rank 0 reports, once
    one = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    two = load_file(str(tmp_path / "two" / "adapter" / "adapter_model.safetensors"))
    assert {k: v.shape for k, v in one.items()} == {k: v.shape for k, v in two.items()}
    assert any((one[k] - two[k]).abs().sum() > 0 for k in one)  # two processes saw other batches
    import json

    def final(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if "loss" in r][-1]

    a, b = final(tmp_path / "one"), final(tmp_path / "two")
    assert abs(a - b) <= 0.25 * a, (a, b)  # comparable: same model, twice the examples per step
