"""The interview's time estimate against the real training time, on this machine, in one run.

    .venv/bin/python bench/time_estimate.py [--models tiny,qwen0.5b] [--examples 48] [--epochs 1]

For each model: the example shop's SFT set (RAG prompts, EN and ZH, repeated to --examples), the training the
interview recommends for it (agent/interview/recommend.py: method, batch, accumulation, length) and what `onboard
run` does: `training.probe` times a few real steps and says how long the run will take; then the run itself
trains, and its wall time (from the call to the adapter saved) is the truth. The target (issue 14): the estimate
within 30 % of the real time. Each run is a subprocess with 2 torch threads, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from training.fetch import default_cache

ROOT = Path(__file__).resolve().parent.parent
QWEN = default_cache("qwen2.5-coder-0.5b-instruct") / "hf"

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(2)
from agent.interview.plan import Plan
from agent.interview.recommend import detect_hardware, recommended
from training.config import TrainConfig
from training.probe import probe
from training.sft import run
name, model, data, out, epochs = sys.argv[1:6]
plan, _ = recommended(Plan(base_model=name if name == "tiny" else "qwen2.5-coder-0.5b-instruct",
                           hardware=detect_hardware()))
t = plan.training
cfg = TrainConfig(base_model=model, train_file=data, output_dir=out, method=plan.method, epochs=float(epochs),
                  batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
                  max_length=t.max_length, learning_rate=t.learning_rate, evaluate=False, report_to=[],
                  logging_steps=5, gradient_checkpointing=t.gradient_checkpointing)
t0 = time.perf_counter()
p = probe(cfg)
probe_s = time.perf_counter() - t0
t0 = time.perf_counter()
r = run(cfg)
real = time.perf_counter() - t0
print(json.dumps({"method": plan.method, "batch": f"{t.batch_size}x{t.gradient_accumulation_steps}",
                  "steps": r.steps, "probe_steps": p.steps, "estimate_s": p.seconds, "probe_s": probe_s,
                  "real_s": real, "ratio": p.seconds / real, "step_s": p.step_s, "setup_s": p.setup_s}))
"""


def dataset(tmp: Path, n: int) -> Path:
    """The example shop's SFT set, repeated to n examples."""
    from rag import RagConfig, ingest
    from training.data.build import DataBuildConfig, run
    from training.data.rules import RULES

    ws = tmp / "ws"
    ingest(RagConfig(workspace=ws), ROOT / "examples" / "docs")
    r = run(DataBuildConfig(workspace=ws, test_fraction=0, rules=RULES))
    rows = r.train_file.read_text(encoding="utf-8").splitlines()
    out = tmp / "train.jsonl"
    out.write_text("\n".join((rows * (n // len(rows) + 1))[:n]) + "\n", encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,qwen0.5b")
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--epochs", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = dataset(tmp, args.examples)
        models = {}
        if "tiny" in args.models:
            from training.tiny import TinyConfig
            from training.tiny import run as build_tiny

            models["tiny"] = tmp / "tiny"
            build_tiny(TinyConfig(docs=ROOT / "examples" / "docs", out=models["tiny"], steps=100))
        if "qwen0.5b" in args.models:
            if (QWEN / "config.json").exists():
                models["qwen0.5b"] = QWEN
            else:
                print(f"skipping qwen0.5b: not in {QWEN} (`onboard base fetch qwen2.5-coder-0.5b-instruct`)")
        print(f"{args.examples} examples x {args.epochs:g} epoch(s); estimate = training.probe, real = the run's wall "
              "time")
        print(f"{'model':10} {'method':6} {'batch':6} {'steps':>5} {'estimate':>9} {'real':>8} {'ratio':>6} "
              f"{'probe cost':>10}")
        for name, model in models.items():
            env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            res = subprocess.run([sys.executable, "-c", CHILD, name, str(model), str(data), str(tmp / f"run-{name}"),
                                  str(args.epochs)], capture_output=True, text=True, env=env, cwd=ROOT)
            if res.returncode:
                print(res.stderr[-3000:])
                sys.exit(1)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{name:10} {r['method']:6} {r['batch']:6} {r['steps']:5d} {r['estimate_s']:8.0f}s {r['real_s']:7.0f}s "
                  f"{r['ratio']:6.2f} {r['probe_s']:9.0f}s")
            if r["probe_steps"] != r["steps"]:
                print(f"  the probe counted {r['probe_steps']} steps, the run took {r['steps']}")


if __name__ == "__main__":
    main()
