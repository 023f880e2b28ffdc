"""Supervised fine-tuning with LoRA or QLoRA (TRL SFTTrainer + PEFT + bitsandbytes).

    onboard train --base .onboard/base/tiny --data .onboard/data/train.jsonl --method qlora

Reads top to bottom: load the base (4-bit NF4 for QLoRA), wrap it with LoRA on every linear layer,
load the chat dataset, train with loss on assistant turns only, save the adapter and the run's
provenance (resolved config, dataset hash, base model, metrics).
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from training.base_model import load_model, load_tokenizer, model_info, resolve
from training.callbacks import MetricsFile
from training.data.files import read_messages_file
from training.data.formats import file_sha256
from training.io import publish_dir, refuse_overwrite

log = logging.getLogger(__name__)


@dataclass
class SFTRunConfig:
    """One supervised fine-tuning run."""

    base_model: str
    """Local model folder or Hub id."""
    train_file: Path
    """JSONL of chat examples (OpenAI `messages`, or alpaca instruction/input/output)."""
    output_dir: Path
    """Run folder: adapter, checkpoints, config.json, metrics.jsonl."""
    eval_file: Path | None = None
    """Held-out JSONL in the same format; its loss is logged at the end of each epoch."""
    method: Literal["qlora", "lora"] = "qlora"
    """qlora: 4-bit NF4 base (double quant) + LoRA. lora: full-precision base + LoRA (faster on CPU)."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    """LoRA targets; "all-linear" finds every linear layer except the output head."""
    epochs: float = 3.0
    max_steps: int = -1
    """Stop after this many optimizer steps (overrides epochs when > 0)."""
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    """Examples longer than this (in tokens) are truncated."""
    gradient_checkpointing: bool = False
    logging_steps: int = 1
    save_steps: int = 100
    seed: int = 42
    resume: bool = False
    """Continue from the last checkpoint in output_dir."""
    force: bool = False
    """Replace a finished run in output_dir."""
    extra: dict = field(default_factory=dict)
    """Further `SFTConfig` fields, passed through as they are."""

    def __post_init__(self) -> None:
        self.train_file, self.output_dir = Path(self.train_file), Path(self.output_dir)
        self.eval_file = Path(self.eval_file) if self.eval_file else None
        if self.method not in ("qlora", "lora"):
            raise ValueError(f"method must be 'qlora' or 'lora' (got {self.method!r})")


@dataclass
class SFTResult:
    output_dir: Path
    adapter_dir: Path
    train_loss: float
    first_loss: float | None
    last_loss: float | None
    eval_loss: float | None
    steps: int
    seconds: float


def _check_output(cfg: SFTRunConfig) -> None:
    refuse_overwrite(cfg.output_dir / "adapter", cfg.force or cfg.resume, " (a trained adapter; --resume continues it)")
    if cfg.force and not cfg.resume:
        shutil.rmtree(cfg.output_dir, ignore_errors=True)


def _versions() -> dict:
    import bitsandbytes
    import peft
    import torch
    import transformers
    import trl

    return {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "trl": trl.__version__, "bitsandbytes": bitsandbytes.__version__,
    }


def _dataset_stats(train_file: Path) -> dict | None:
    """What `onboard data build` recorded about the dataset (kind, rules, chunks per prompt), if it made it."""
    f = Path(train_file).parent / "stats.json"
    if not f.exists():
        return None
    s = json.loads(f.read_text())
    return {k: s.get(k) for k in ("kind", "docs", "context_chunks", "by_rule", "by_language", "train", "test")}


def run(cfg: SFTRunConfig, callbacks: list | None = None) -> SFTResult:
    """Train a LoRA/QLoRA adapter on `cfg.train_file` and save it to `<output_dir>/adapter`."""
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    base = resolve(cfg.base_model)
    train_rows = read_messages_file(cfg.train_file)  # validates every line before any model loads
    eval_rows = read_messages_file(cfg.eval_file) if cfg.eval_file else None
    _check_output(cfg)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = load_tokenizer(base)
    model = load_model(base, quantization="4bit" if cfg.method == "qlora" else "none", training=True)
    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)

    provenance = {
        "stage": "sft",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "base_model": model_info(base),
        "train_sha256": file_sha256(cfg.train_file),
        "train_examples": len(train_rows),
        "eval_sha256": file_sha256(cfg.eval_file) if cfg.eval_file else None,
        "dataset": _dataset_stats(cfg.train_file),
        "versions": _versions(),
    }
    (cfg.output_dir / "config.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False))

    args = SFTConfig(
        output_dir=str(cfg.output_dir / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        activation_checkpointing=cfg.gradient_checkpointing,
        max_length=cfg.max_length,
        assistant_only_loss=True,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="epoch" if eval_rows else "no",
        seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        bf16=False,
        use_cpu=not model.device.type == "cuda",
        **cfg.extra,
    )
    peft_cfg = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules, task_type="CAUSAL_LM",
    )
    metrics = cfg.output_dir / "metrics.jsonl"
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([{"messages": r} for r in train_rows]),
        eval_dataset=Dataset.from_list([{"messages": r} for r in eval_rows]) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_cfg,
        callbacks=[MetricsFile(metrics), *(callbacks or [])],
    )
    if cfg.method == "qlora" and model.device.type == "cpu":
        # TRL casts QLoRA adapters to bf16 (the paper's GPU recipe); bf16 matmuls are ~18x slower on CPU.
        for p in trainer.model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    trainer.remove_callback(PrinterCallback)  # progress is reported through callbacks, not print()
    last_ckpt = _last_checkpoint(cfg.output_dir / "checkpoints") if cfg.resume else None
    out = trainer.train(resume_from_checkpoint=last_ckpt)

    adapter_dir = cfg.output_dir / "adapter"
    with publish_dir(adapter_dir) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(tmp)

    losses = [r["loss"] for r in _read_jsonl(metrics) if "loss" in r]
    evals = [r["eval_loss"] for r in _read_jsonl(metrics) if "eval_loss" in r]
    result = SFTResult(
        output_dir=cfg.output_dir, adapter_dir=adapter_dir, train_loss=out.training_loss,
        first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
        eval_loss=evals[-1] if evals else None, steps=out.global_step, seconds=time.perf_counter() - t0,
    )
    provenance["result"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
    (cfg.output_dir / "config.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False))
    return result


def _last_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if folder.exists() else []
    return str(ckpts[-1]) if ckpts else None


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
