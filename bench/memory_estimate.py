"""training/memory/'s estimate against measured peak memory of real training steps on CPU.

    OMP_NUM_THREADS=1 .venv/bin/python bench/memory_estimate.py [--steps 3] [--models tiny,0.5b]

Each setting runs Onboard's own SFT (training/sft.py: TRL SFTTrainer, PEFT, bitsandbytes) for a few
steps in a fresh subprocess. The measured figure is the peak resident memory (RSS, sampled every
5 ms from the first training step to the last) minus the RSS after the imports and before the model
loads: what the estimate models (weights, adapters, optimizer, activations, loss), without the
Python/torch runtime itself. Every example is longer than the sequence length, so each batch is
exactly batch x seq tokens.

Models: the tiny base (training/tiny.py, built here from examples/docs), and Qwen2.5-0.5B: the real
one when ~/.cache/onboard/models/qwen2.5-coder-0.5b-instruct (or its hf/ folder) holds it, else a
random-weight model of the same config (memory does not depend on the weights' values), which the
table says.

Two columns of measurements: with glibc's default allocator (what a user's process does: freed
blocks are kept for reuse, which the estimate's `allocator` term models), and with
MALLOC_MMAP_THRESHOLD_=65536, where RSS follows the live tensors (compared with the estimate minus
its `allocator` term).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REAL_05B = Path("~/.cache/onboard/models/qwen2.5-coder-0.5b-instruct").expanduser()
TINY = [("lora", 2, 512, False), ("lora", 4, 1024, False), ("lora", 8, 1024, False), ("lora", 8, 1024, True),
        ("qlora", 2, 512, False), ("qlora", 8, 1024, False)]
HALF_B = [("lora", 1, 128, False), ("lora", 1, 512, False)]


def _child(spec: dict) -> None:
    """Train `spec` for a few steps; print one JSON line with the measured peak."""
    import psutil
    import torch
    from transformers import TrainerCallback

    from training.sft import SFTRunConfig, run

    torch.set_num_threads(1)
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak, window, step_times = [0], [False], []

    def sample() -> None:
        while True:
            if window[0]:
                peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    class Window(TrainerCallback):
        def on_train_begin(self, *a, **k):
            window[0] = True

        def on_step_end(self, *a, **k):
            step_times.append(time.perf_counter())

        def on_train_end(self, *a, **k):
            window[0] = False

    threading.Thread(target=sample, daemon=True).start()
    cfg = SFTRunConfig(base_model=spec["model"], train_file=spec["data"], output_dir=spec["out"],
                       method=spec["method"], batch_size=spec["batch"], max_length=spec["seq"],
                       max_steps=spec["steps"], gradient_checkpointing=spec["ckpt"], save_steps=10**6,
                       report_to="none", check_eos=False)
    run(cfg, callbacks=[Window()])
    per_step = (step_times[-1] - step_times[0]) / (len(step_times) - 1) if len(step_times) > 1 else None
    print(json.dumps({"measured": peak[0] - baseline, "baseline": baseline, "s_per_step": per_step}))


def _measure(spec: dict, live: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if live:  # glibc serves blocks >= 64 KiB by mmap and unmaps them on free: RSS then follows live tensors
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    r = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                       env=env, cwd=ROOT)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode or not lines:
        raise RuntimeError(f"setting {spec} failed:\n{r.stderr[-3000:]}")
    return json.loads(lines[-1])


def _train_file(folder: Path, tokenizer_dir: Path, longest: int) -> Path:
    """Chat examples whose answers are longer than `longest` tokens (the document texts, repeated)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = [p.read_text() for p in sorted((ROOT / "examples" / "docs").glob("*.md"))]
    rows = []
    for i in range(64):
        answer = "\n\n".join(texts[i % len(texts):] + texts[: i % len(texts)])
        while len(tok(answer)["input_ids"]) < longest + 64:
            answer += "\n\n" + answer
        rows.append({"messages": [{"role": "user", "content": f"Tell me everything ({i})."},
                                  {"role": "assistant", "content": answer}]})
    f = folder / "train.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return f


def _random_05b(folder: Path, tokenizer_dir: Path) -> Path:
    """A Qwen2.5-0.5B-shaped model with random weights (the tiny model's tokenizer: ids fit its vocabulary)."""
    import shutil

    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from training.memory import ModelShape

    s, tok = ModelShape.preset("qwen2.5-0.5b"), AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = Qwen2Config(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                      num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                      tie_word_embeddings=True, max_position_embeddings=4096, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, bos_token_id=None)
    out = folder / "qwen2.5-0.5b-random"
    Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(out)  # bf16 on disk, fp32 once loaded
    for f in tokenizer_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, out / f.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", default="tiny,0.5b", help="comma-separated: tiny, 0.5b")
    args = ap.parse_args()
    if args.child:
        return _child(json.loads(args.child))
    with tempfile.TemporaryDirectory(prefix="onboard-mem-") as tmp:  # models and runs: gone afterwards
        _bench(Path(tmp), args)


def _bench(work: Path, args) -> None:
    from training.memory import GiB, ModelShape, estimate
    from training.tiny import TinyConfig
    from training.tiny import run as build_tiny

    tiny = work / "tiny"
    build_tiny(TinyConfig(docs=ROOT / "examples" / "docs", out=tiny, steps=20))
    for d in ("tiny-data", "half-data"):
        (work / d).mkdir()
    wanted = args.models.split(",")
    models = [("tiny", tiny, TINY, args.steps, _train_file(work / "tiny-data", tiny, 1024))] if "tiny" in wanted else []
    if "0.5b" in wanted:
        real = next((d for d in (REAL_05B, REAL_05B / "hf") if (d / "config.json").exists()), None)
        path = real or _random_05b(work, tiny)
        label = "Qwen2.5-Coder-0.5B" if real else "Qwen2.5-0.5B shape, random weights"
        models.append((label, path, HALF_B, 2, _train_file(work / "half-data", path, 512)))

    print("| model | method | batch x seq | checkpointing | estimate GiB | measured GiB (glibc default) | error "
          "| estimate w/o allocator | measured GiB (live) | error | s/step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, path, settings, steps, data in models:
        shape = ModelShape.from_config(path, name=label)
        for method, batch, seq, ckpt in settings:
            spec = dict(model=str(path), data=str(data), out=str(work / f"run-{label[:4]}-{method}-{batch}-{seq}-{ckpt}"),
                        method=method, batch=batch, seq=seq, steps=steps, ckpt=ckpt)
            default, live = _measure(spec, live=False), _measure({**spec, "out": spec["out"] + "-live"}, live=True)
            e = estimate(shape, method, seq, batch, 16, ckpt, "fp32", device="cpu", lora_dropout=0.05)
            step = f"{default['s_per_step']:.2f}" if default["s_per_step"] else "-"
            cells = [f"{est / GiB:.3f} | {m['measured'] / GiB:.3f} | {(est - m['measured']) / m['measured']:+.0%}"
                     for est, m in ((e.total, default), (e.total - e.allocator, live))]
            print(f"| {label} | {method} | {batch} x {seq} | {'on' if ckpt else 'off'} | {' | '.join(cells)} | "
                  f"{step} |", flush=True)


if __name__ == "__main__":
    main()
