"""What every training stage (cpt.py, sft.py, dpo.py) shares: the run config, loading the base for a
method, the PEFT config, provenance, checkpoints and what a finished run leaves behind.

Methods:
- `lora`: LoRA on a full-precision base (fp32 on CPU, bf16 on CUDA): on CPU the fastest choice.
- `qlora`: the base in 4-bit NF4 with double quantization (bitsandbytes) + LoRA; fp32 compute on
  CPU, bf16 on CUDA. Least memory; on CPU slower than `lora` (4-bit matmuls dequantize).
- `dora`: weight-decomposed LoRA (PEFT `use_dora`) on a full-precision base.
- `prefix`: prefix tuning (PEFT `PrefixTuningConfig`): trainable virtual tokens, base frozen.
- `full`: every weight trained (small models only; see training/memory.py).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from training.errors import TrainingError
from training.io import refuse_overwrite

log = logging.getLogger(__name__)

Method = Literal["lora", "qlora", "dora", "prefix", "full"]
METHODS = ("lora", "qlora", "dora", "prefix", "full")

CHECKPOINTING_FROM = 100_000_000
"""Parameter count from which gradient checkpointing is on by default."""

@dataclass
class TrainConfig:
    """One training run (CPT, SFT or DPO). Stage-specific fields say which stage reads them."""

    base_model: str
    """Local model folder, Hub id or .gguf file."""
    train_file: Path
    """JSONL: `{"text"}` for CPT, chat records for SFT, preference triples for DPO."""
    output_dir: Path
    """Run folder: adapter (or model), checkpoints, config.json, metrics.jsonl, loss.png, tensorboard/."""
    eval_file: Path | None = None
    """Held-out JSONL in the same format; eval loss is logged each epoch (or every eval_steps)."""
    method: Method = "qlora"
    """lora, qlora, dora, prefix or full (see the module docstring)."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    """LoRA targets; "all-linear" finds every linear layer except the output head."""
    num_virtual_tokens: int = 20
    """prefix: virtual tokens per layer."""
    init_adapter: Path | None = None
    """DPO: start from this (SFT) adapter instead of a fresh one; its base is the reference model."""
    beta: float = 0.1
    """DPO: strength of the KL penalty towards the reference model."""
    packing: bool | None = None
    """Pack several examples per sequence (padding-free). Default: on for CPT, off for SFT."""
    epochs: float = 3.0
    max_steps: int = -1
    """Stop after this many optimizer steps (overrides epochs when > 0)."""
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    """Examples longer than this (in tokens) are truncated."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass. None: on for models of CHECKPOINTING_FROM parameters
    or more (less memory, and on CPU also faster: see bench/RESULTS.md), off for smaller ones."""
    early_stopping_patience: int | None = None
    """Stop when eval loss has not improved for this many evaluations (needs eval_file)."""
    eval_steps: int | None = None
    """Evaluate every N steps (default: each epoch)."""
    logging_steps: int = 1
    save_steps: int = 100
    """Checkpoint every N steps (and on SIGTERM), kept in output_dir/checkpoints."""
    seed: int = 42
    report_to: list[str] | str = "tensorboard"
    """Trackers: tensorboard (default, written to output_dir/tensorboard), wandb, mlflow, or "none"."""
    resume: bool = False
    """Continue from the last checkpoint in output_dir, with the same data order."""
    force: bool = False
    """Replace a finished run in output_dir."""
    check_eos: bool = True
    """SFT: after training, generate on a training prompt and warn unless the model stops (EOS)."""
    extra: dict = field(default_factory=dict)
    """Further TRL config fields (SFTConfig / DPOConfig), passed through as they are."""

    def __post_init__(self) -> None:
        self.train_file, self.output_dir = Path(self.train_file), Path(self.output_dir)
        self.eval_file = Path(self.eval_file) if self.eval_file else None
        self.init_adapter = Path(self.init_adapter) if self.init_adapter else None
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)} (got {self.method!r})")
        if self.early_stopping_patience and not self.eval_file:
            raise ValueError("--early-stopping needs an eval file (--eval-data) to watch.")


@dataclass
class TrainResult:
    output_dir: Path
    adapter_dir: Path
    """The trained adapter (or the whole model, for method=full)."""
    train_loss: float
    first_loss: float | None
    last_loss: float | None
    eval_loss: float | None
    steps: int
    seconds: float
    stopped_by: str | None = None
    """"sigterm" when a SIGTERM ended the run early (a checkpoint was saved; --resume continues)."""
    eos_ok: bool | None = None
    """SFT: whether generation on a training prompt ended with EOS (None: not checked)."""


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed run (accelerate/torchrun set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_output(cfg: TrainConfig) -> None:
    if not is_main_process():  # rank 0 checks and clears the run folder; the others only train
        return
    refuse_overwrite(cfg.output_dir / "adapter", cfg.force or cfg.resume, " (a trained run; --resume continues it)")
    if cfg.force and not cfg.resume:
        shutil.rmtree(cfg.output_dir, ignore_errors=True)
    if cfg.resume and not last_checkpoint(cfg.output_dir / "checkpoints"):
        raise TrainingError(f"{cfg.output_dir}: no checkpoint to resume from. Run without --resume to start.")


def last_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if folder.exists() else []
    ckpts = [c for c in ckpts if (c / "trainer_state.json").exists()]  # a checkpoint cut short by a kill is skipped
    return str(ckpts[-1]) if ckpts else None


def versions() -> dict:
    import bitsandbytes
    import peft
    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "trl": trl.__version__, "bitsandbytes": bitsandbytes.__version__}


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_for(cfg: TrainConfig, base: str):
    """The base model as the method needs it: 4-bit for qlora, full precision otherwise. Resolves
    `cfg.gradient_checkpointing` when it is None (auto), from the model's size."""
    from peft import prepare_model_for_kbit_training

    from training.base_model import load_model

    model = load_model(base, quantization="4bit" if cfg.method == "qlora" else "none", training=True)
    if cfg.gradient_checkpointing is None:
        cfg.gradient_checkpointing = model.num_parameters() >= CHECKPOINTING_FROM
    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    if cfg.method == "prefix":
        model.config.use_cache = True  # prefix tuning feeds its virtual tokens through the KV cache
    return model


def peft_config(cfg: TrainConfig):
    """The PEFT config for the method, or None for a full fine-tune."""
    from peft import LoraConfig, PrefixTuningConfig

    if cfg.method == "full":
        return None
    if cfg.method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, task_type="CAUSAL_LM")
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, use_dora=cfg.method == "dora", task_type="CAUSAL_LM")


def trainer_args(cfg: TrainConfig, has_eval: bool, model) -> dict:
    """Fields shared by SFTConfig and DPOConfig."""
    report = [r for r in _trackers(cfg) if r != "tensorboard"]  # ours: see tracker_callbacks
    eval_strategy = ("steps" if cfg.eval_steps else "epoch") if has_eval else "no"
    args = dict(
        output_dir=str(cfg.output_dir / "checkpoints"), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        gradient_checkpointing=cfg.gradient_checkpointing, max_length=cfg.max_length,
        logging_steps=cfg.logging_steps, save_steps=cfg.save_steps, save_total_limit=2,
        eval_strategy=eval_strategy, eval_steps=cfg.eval_steps, seed=cfg.seed, data_seed=cfg.seed,
        report_to=report or "none", disable_tqdm=True,
        dataloader_num_workers=0, bf16=on_cuda(), use_cpu=model.device.type != "cuda",
    )
    if cfg.early_stopping_patience:
        args.update(save_strategy=eval_strategy, load_best_model_at_end=True, metric_for_best_model="eval_loss",
                    greater_is_better=False)
    return {**args, **cfg.extra}


def _trackers(cfg: TrainConfig) -> list[str]:
    report = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to)
    return [r for r in report if r != "none" and _tracker_available(r)]


def tracker_callbacks(cfg: TrainConfig) -> list:
    """TensorBoard, written to `<output_dir>/tensorboard` (transformers would bury it under checkpoints/)."""
    if "tensorboard" not in _trackers(cfg):
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(cfg.output_dir / "tensorboard")))]


def _tracker_available(name: str) -> bool:
    import importlib.util

    module = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}.get(name, name)
    if importlib.util.find_spec(module) is None:
        log.warning("report_to %r: the %r package is not installed; skipping it", name, module)
        return False
    return True


def fp32_adapters_on_cpu(trainer, cfg: TrainConfig) -> None:
    """TRL casts QLoRA adapters to bf16 (the paper's GPU recipe); bf16 matmuls are ~18x slower on CPU."""
    if cfg.method == "qlora" and not on_cuda():
        for p in trainer.model.parameters():
            if p.requires_grad:
                p.data = p.data.float()


def provenance(cfg: TrainConfig, stage: str, base: str, rows: int) -> dict:
    from training.base_model import model_info
    from training.data.formats import file_sha256

    return {
        "stage": stage,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "base_model": model_info(base),
        "train_sha256": file_sha256(cfg.train_file),
        "train_examples": rows,
        "eval_sha256": file_sha256(cfg.eval_file) if cfg.eval_file else None,
        "dataset": dataset_stats(cfg.train_file),
        "versions": versions(),
    }


def dataset_stats(train_file: Path) -> dict | None:
    """What `onboard data build` recorded about the dataset (kind, rules, chunks per prompt), if it made it."""
    f = Path(train_file).parent / "stats.json"
    if not f.exists():
        return None
    s = json.loads(f.read_text())
    return {k: s.get(k) for k in ("kind", "docs", "context_chunks", "by_rule", "by_language", "train", "test")}


def write_json(path: Path, data: dict) -> None:
    if not is_main_process():
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def finish(trainer, tokenizer, cfg: TrainConfig, out, prov: dict, t0: float, stopped_by: str | None,
           eos_ok: bool | None = None) -> TrainResult:
    """Save the adapter (or model) atomically, draw the loss curve, record the result."""
    import time

    from training.callbacks import dedup_steps, plot_losses
    from training.io import publish_dir

    adapter_dir = cfg.output_dir / "adapter"
    if stopped_by is None:
        if is_main_process():
            with publish_dir(adapter_dir) as tmp:
                trainer.save_model(str(tmp))
                tokenizer.save_pretrained(tmp)
        else:  # sharded setups (FSDP, ZeRO-3) gather weights on every rank; only rank 0 writes
            trainer.save_model(str(adapter_dir.with_name(adapter_dir.name + ".tmp")))
        trainer.accelerator.wait_for_everyone()
    metrics = read_jsonl(cfg.output_dir / "metrics.jsonl")
    if is_main_process():
        plot_losses(metrics, cfg.output_dir / "loss.png")
    losses = [r["loss"] for r in dedup_steps(metrics, "loss")]
    evals = [r["eval_loss"] for r in dedup_steps(metrics, "eval_loss")]
    result = TrainResult(
        output_dir=cfg.output_dir, adapter_dir=adapter_dir, train_loss=out.training_loss,
        first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
        eval_loss=evals[-1] if evals else None, steps=out.global_step, seconds=time.perf_counter() - t0,
        stopped_by=stopped_by, eos_ok=eos_ok,
    )
    prov["result"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
    write_json(cfg.output_dir / "config.json", prov)
    return result
