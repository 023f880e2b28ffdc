"""SFT training throughput: our path (training/sft.py) against plain TRL `SFTTrainer` with its
defaults, on the same model and data, in one run.

    .venv/bin/python bench/train_throughput.py [--models tiny,qwen0.5b] [--examples 48]

Each configuration trains one epoch over the same examples in its own subprocess (so peak memory
is that configuration's own) with 2 torch threads, one after the other. Tokens/s counts real
(non-padding) tokens, from TRL's `num_tokens`, divided by the trainer's train_runtime.
- baseline: `SFTTrainer(model=<path>, args=SFTConfig(output_dir, per_device_train_batch_size=4,
  num_train_epochs=1, use_cpu=True), peft_config=LoraConfig(r=16, target_modules="all-linear"))`: TRL's
  defaults, which on CPU include bf16 autocast and padding each batch to its longest example;
- ours: what `onboard train --method lora` does by default: fp32 on CPU, assistant-only loss, the LM
  head on the answer tokens only (training/lm_head.py), gradient checkpointing from 100M parameters;
  then the same with TRL's own LM head, without checkpointing, and with padding-free packing, to show
  what each part is worth.
The tiny model is built on the spot; the 0.5B model is the one `onboard base fetch
qwen2.5-coder-0.5b-instruct` converts (skipped when it is not in the cache).
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
import json, os, resource, sys, time
import torch
torch.set_num_threads(2)
kind, model, data, out, max_length = sys.argv[1:6]
rows = [json.loads(x)["messages"] for x in open(data)]
if kind == "baseline":
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    args = SFTConfig(output_dir=out, per_device_train_batch_size=4, num_train_epochs=1, report_to="none",
                     max_length=int(max_length), save_strategy="no", logging_steps=1, disable_tqdm=True,
                     use_cpu=not torch.cuda.is_available())
    t = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list([{"messages": r} for r in rows]),
                   peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    r = t.train()
    logs = t.state.log_history
else:
    import training.lm_head
    from training.config import TrainConfig
    from training.sft import run
    if kind == "ours, TRL's LM head":
        training.lm_head.compact_lm_head = lambda model: False
    cfg = TrainConfig(base_model=model, train_file=data, output_dir=out, method="lora", epochs=1, batch_size=4,
                      max_length=int(max_length), report_to="none", check_eos=False, save_steps=10**6,
                      packing=(kind == "ours+packing"), bf16=True if kind == "ours+bf16" else None,
                      gradient_checkpointing=False if kind == "ours, no checkpointing" else None)
    run(cfg)
    logs = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
tokens = max(x.get("num_tokens", 0) for x in logs)
runtime = [x["train_runtime"] for x in logs if "train_runtime" in x][-1]
losses = [x["loss"] for x in logs if "loss" in x]
print(json.dumps({"tokens": tokens, "seconds": runtime, "tokens_per_s": tokens / runtime,
                  "first_loss": losses[0], "last_loss": losses[-1],
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def dataset(tmp: Path, n: int) -> Path:
    """The example shop's SFT set (RAG prompts, EN and ZH), repeated to n examples."""
    from rag import RagConfig, ingest
    from training.data.build import DataBuildConfig, run

    ws = tmp / "ws"
    ingest(RagConfig(workspace=ws), ROOT / "examples" / "docs")
    r = run(DataBuildConfig(workspace=ws, test_fraction=0))
    rows = r.train_file.read_text().splitlines()
    out = tmp / "train.jsonl"
    out.write_text("\n".join((rows * (n // len(rows) + 1))[:n]) + "\n")
    return out


def measure(kind: str, model: str, data: Path, tmp: Path, max_length: int) -> dict:
    out = tmp / f"run-{kind}-{abs(hash(model))}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2", "TQDM_DISABLE": "1"}
    p = subprocess.run([sys.executable, "-c", CHILD, kind, model, str(data), str(out), str(max_length)], env=env,
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{kind} on {model} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tiny,qwen0.5b")
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--max-length", type=int, default=1024)
    args = ap.parse_args()
    from training.tiny import TinyConfig
    from training.tiny import run as build_tiny

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = dataset(tmp, args.examples)
        models = {}
        if "tiny" in args.models:
            build_tiny(TinyConfig(docs=ROOT / "examples" / "docs", out=tmp / "tiny", steps=30))
            models["tiny (3.5M)"] = str(tmp / "tiny")
        if "qwen0.5b" in args.models:
            if (QWEN / "config.json").exists():
                models["Qwen2.5-Coder-0.5B"] = str(QWEN)
            else:
                print(f"skipping the 0.5B model: {QWEN} not found (run `onboard base fetch qwen2.5-coder-0.5b-instruct`)")
        for name, path in models.items():
            n = args.examples if name.startswith("tiny") else max(8, args.examples // 6)
            sub = tmp / f"data-{n}.jsonl"
            sub.write_text("".join(data.read_text().splitlines(keepends=True)[:n]))
            base = measure("baseline", path, sub, tmp, args.max_length)
            for kind in ("ours", "ours, TRL's LM head", "ours, no checkpointing", "ours+packing"):
                r = measure(kind, path, sub, tmp, args.max_length)
                results.append((name, n, kind, r, r["tokens_per_s"] / base["tokens_per_s"]))
            results.append((name, n, "baseline (plain TRL)", base, 1.0))
    print("| model | examples | run | tokens | seconds | tokens/s | vs plain TRL | peak RSS GiB | loss first -> last |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, n, kind, r, ratio in results:
        print(f"| {name} | {n} | {kind} | {r['tokens']:.0f} | {r['seconds']:.1f} | {r['tokens_per_s']:.0f} | "
              f"{ratio:.2f}x | {r['peak_rss_gib']:.2f} | {r['first_loss']:.3f} -> {r['last_loss']:.3f} |")


if __name__ == "__main__":
    main()
