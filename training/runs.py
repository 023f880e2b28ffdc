"""What every training stage (cpt.py, sft.py, dpo.py) shares, carried by one `RunContext`: the run
folder and its checks (an earlier run is never replaced without --force, and is continued by --resume
only with the settings it was trained with), the base model as the method needs it, the PEFT and
trainer settings, the callbacks (metrics file, a quick stop on SIGTERM or Ctrl-C, trackers, early
stopping), and what a finished run leaves behind (adapter, loss curve, `config.json`).

A stage reads:

    ctx = RunContext.open(cfg, "sft", examples=len(rows))   # checks the folder, records provenance
    model = ctx.load_model()
    trainer = SFTTrainer(model=model, args=SFTConfig(**ctx.trainer_args(model, has_eval)),
                         peft_config=ctx.peft_config(), callbacks=ctx.callbacks(callbacks), ...)
    out = ctx.train(trainer)
    return ctx.finish(trainer, tokenizer, out)

Methods (training/config.py declares them): lora, qlora, dora, prefix, full.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.model_card import DatasetCard
from rag.workspace import dataset_card_beside
from training.config import CHECKPOINTING_FROM, TrainConfig
from training.errors import BadConfig, OutputExists, TrainingError
from training.record import RunOutcome, RunRecord, base_ref, versions

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    adapter_dir: Path
    """The trained adapter (or the whole model, for method=full)."""
    train_loss: float
    first_loss: float | None
    """The first logged loss (one step's batch: noisy; `start_loss` is what to compare)."""
    last_loss: float | None
    eval_loss: float | None
    """The last evaluation's loss (None: the run evaluated nothing)."""
    steps: int
    seconds: float
    stopped_by: str | None = None
    """"sigterm" or "sigint" (Ctrl-C) when a signal ended the run early: a checkpoint was saved, the
    evaluation skipped; --resume continues."""
    eos_ok: bool | None = None
    """SFT: whether generation on a training prompt ended with EOS (None: not checked)."""
    start_loss: float | None = None
    """Mean training loss over the first 10 % of logged steps (`training.callbacks.loss_ends`)."""
    end_loss: float | None = None
    """Mean training loss over the last 10 % of logged steps: with `start_loss`, how the run went."""


def run_stage(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Run the config's stage: `training.sft`, `cpt` or `dpo` (each a `run(cfg, callbacks)`)."""
    from training import cpt, dpo, sft

    return {"sft": sft.run, "cpt": cpt.run, "dpo": dpo.run}[cfg.stage](cfg, callbacks=callbacks)


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed run (accelerate/torchrun set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def last_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if folder.exists() else []
    ckpts = [c for c in ckpts if (c / "trainer_state.json").exists()]  # a checkpoint cut short by a kill is skipped
    return str(ckpts[-1]) if ckpts else None


@dataclass
class RunContext:
    """One run's shared state: config, resolved base, run record, stop-signal watcher, start time."""

    cfg: TrainConfig
    stage: str
    base: str
    """The resolved base model (a local folder, or a Hub id found in the cache)."""
    record: RunRecord
    t0: float = field(default_factory=time.perf_counter)
    stop: object = None
    """The `training.callbacks.StopOnSignal` watching for SIGTERM and Ctrl-C."""

    @classmethod
    def open(cls, cfg: TrainConfig, stage: str, examples: int, base: str | None = None) -> RunContext:
        """Check the run folder, create it, and record the run's provenance in `config.json` before any
        training starts. A folder holding an earlier run is refused unless --resume (which must continue
        it with the settings it was trained with) or --force (which starts it afresh).

        Call it after the data has been read and checked, so a bad file fails before the folder is touched.

        Raises:
            OutputExists: the folder holds an earlier run and neither --resume nor --force was given.
            BadConfig: --resume with a setting the run was not trained with (each one named, old -> new).
        """
        from training.base_model import resolve, weights_sha256
        from training.callbacks import StopOnSignal
        from training.data.formats import file_sha256

        base = _absolute(base or resolve(cfg.base_model))  # so the adapter's config names it from anywhere
        _check_output(cfg)
        record = RunRecord(
            stage=stage, config=cfg, base_model=base_ref(base), train_sha256=file_sha256(cfg.train_file),
            train_examples=examples, eval_sha256=file_sha256(cfg.eval_file) if cfg.eval_file else None,
            dataset=DatasetCard.read(dataset_card_beside(cfg.train_file)), versions=versions(),
            init_adapter_sha256=weights_sha256(cfg.init_adapter) if cfg.init_adapter and cfg.init_adapter.is_dir()
            else None)
        if cfg.resume and is_main_process():  # rank 0 checks, and keeps, the record
            record = _continue(record, cfg)
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        ctx = cls(cfg, stage, base, record, stop=StopOnSignal())
        ctx.save_record()
        return ctx

    def save_record(self) -> None:
        if is_main_process():
            self.record.write(self.cfg.output_dir)

    # ---- the model and the trainer's settings
    def load_model(self, base: str | None = None):
        """The base model as the method needs it: 4-bit for qlora, full precision otherwise. Resolves
        `cfg.gradient_checkpointing` when it is None (auto): on only when the run's batch would not fit
        this machine's memory without it (`auto_checkpointing`)."""
        from peft import prepare_model_for_kbit_training

        from training.base_model import load_model

        cfg = self.cfg
        model = load_model(base or self.base, quantization="4bit" if cfg.method == "qlora" else "none", training=True)
        if cfg.gradient_checkpointing is None:
            cfg.gradient_checkpointing = auto_checkpointing(model, cfg)
        if cfg.method == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        if cfg.method == "prefix":
            model.config.use_cache = True  # prefix tuning feeds its virtual tokens through the KV cache
        self.record.config = cfg
        self.save_record()
        return model

    def peft_config(self):
        """The PEFT config for the method, or None for a full fine-tune."""
        from peft import LoraConfig, PrefixTuningConfig

        cfg = self.cfg
        if cfg.method == "full":
            return None
        if cfg.method == "prefix":
            return PrefixTuningConfig(num_virtual_tokens=cfg.num_virtual_tokens, task_type="CAUSAL_LM")
        return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.target_modules, use_dora=cfg.method == "dora", task_type="CAUSAL_LM")

    def trainer_args(self, model, has_eval: bool) -> dict:
        """Fields shared by SFTConfig and DPOConfig."""
        cfg = self.cfg
        report = [r for r in _trackers(cfg) if r != "tensorboard"]  # ours: see callbacks()
        eval_strategy = ("steps" if cfg.eval_steps else "epoch") if has_eval else "no"
        args = dict(
            output_dir=str(cfg.output_dir / "checkpoints"), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
            learning_rate=cfg.learning_rate, per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            gradient_checkpointing=cfg.gradient_checkpointing, max_length=cfg.max_length,
            logging_steps=cfg.logging_steps, save_steps=cfg.save_steps, save_total_limit=2,
            eval_strategy=eval_strategy, eval_steps=cfg.eval_steps, seed=cfg.seed, data_seed=cfg.seed,
            report_to=report or "none", disable_tqdm=True, dataloader_num_workers=0,
            bf16=on_cuda() if cfg.bf16 is None else cfg.bf16, use_cpu=model.device.type != "cuda",
        )
        if cfg.early_stopping_patience:
            args.update(save_strategy=eval_strategy, load_best_model_at_end=True, metric_for_best_model="eval_loss",
                        greater_is_better=False)
        return args

    def callbacks(self, extra: list | None = None) -> list:
        """Metrics file, stop on SIGTERM/Ctrl-C, TensorBoard (in the run folder), early stopping, then `extra`."""
        from training.callbacks import MetricsFile

        cbs = [MetricsFile(self.cfg.output_dir / "metrics.jsonl"), self.stop, *_tensorboard(self.cfg)]
        if self.cfg.early_stopping_patience:
            from transformers import EarlyStoppingCallback

            cbs.append(EarlyStoppingCallback(early_stopping_patience=self.cfg.early_stopping_patience))
        return [*cbs, *(extra or [])]

    # ---- training
    def train(self, trainer, models: tuple = ()):
        """Prepare `trainer` (fp32 adapters on CPU, the compact LM head on `models` or the trainer's
        model, no printing) and train, resuming from the last checkpoint when asked."""
        from transformers import PrinterCallback

        from training.lm_head import compact_lm_head

        if self.cfg.method == "qlora" and not on_cuda():
            # TRL casts QLoRA adapters to bf16 (the paper's GPU recipe); bf16 matmuls are ~18x slower on CPU
            for p in trainer.model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
        for m in models or (trainer.model,):  # the LM head on labelled positions only (training/lm_head.py)
            compact_lm_head(m)
        trainer.remove_callback(PrinterCallback)  # progress is reported through callbacks, not print()
        resume = last_checkpoint(self.cfg.output_dir / "checkpoints") if self.cfg.resume else None
        try:
            return trainer.train(resume_from_checkpoint=resume)
        finally:
            self.stop.restore()

    @property
    def stopped_by(self) -> str | None:
        return self.stop.received

    def finish(self, trainer, tokenizer, out, eos_ok: bool | None = None) -> TrainResult:
        """Save the adapter (or model) atomically, draw the loss curve, record the result."""
        from rag.io import publish_dir
        from training.callbacks import dedup_steps, loss_ends, plot_losses, read_metrics

        cfg = self.cfg
        adapter_dir = cfg.output_dir / "adapter"
        if self.stopped_by is None:
            if is_main_process():
                with publish_dir(adapter_dir) as tmp:
                    trainer.save_model(str(tmp))
                    tokenizer.save_pretrained(tmp)
            else:  # sharded setups (FSDP, ZeRO-3) gather weights on every rank; only rank 0 writes
                trainer.save_model(str(adapter_dir.with_name(adapter_dir.name + ".tmp")))
            trainer.accelerator.wait_for_everyone()
        metrics = read_metrics(cfg.output_dir / "metrics.jsonl")
        if is_main_process():
            plot_losses(metrics, cfg.output_dir / "loss.png")
        losses = [r["loss"] for r in dedup_steps(metrics, "loss")]
        evals = [r["eval_loss"] for r in dedup_steps(metrics, "eval_loss")]
        start, end = loss_ends(losses) or (None, None)
        result = TrainResult(
            output_dir=cfg.output_dir, adapter_dir=adapter_dir, train_loss=out.training_loss,
            first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
            start_loss=start, end_loss=end,
            eval_loss=evals[-1] if evals else None, steps=out.global_step, seconds=time.perf_counter() - self.t0,
            stopped_by=self.stopped_by, eos_ok=eos_ok,
        )
        outcome = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items() if k != "output_dir"}
        self.record.result = RunOutcome(**outcome)
        self.save_record()
        return result


RUN_OUTPUTS = ("adapter", "adapter.tmp", "checkpoints", "config.json", "metrics.jsonl", "loss.png", "tensorboard",
               "start", "start.tmp")
"""What a run writes in its folder, and all that --force removes (nothing else there is touched)."""


def _check_output(cfg: TrainConfig) -> None:
    """Never over an earlier run without being told: an interrupted run's checkpoints and metrics are
    kept unless --resume continues them or --force starts afresh (its outputs removed, so metrics.jsonl
    does not mix two runs)."""
    if not is_main_process():  # rank 0 checks and clears the run folder; the others only train
        return
    out = cfg.output_dir
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if cfg.resume:
        if not last_checkpoint(out / "checkpoints"):
            again = "--force instead of --resume to start it again" if held else "without --resume to start"
            raise TrainingError(f"{out}: no checkpoint to resume from. Run {again}.")
        return
    if not held:
        return
    if not cfg.force:
        raise OutputExists(f"{out} holds an earlier run ({_describe_run(out, held)}). Pass --resume to continue it, "
                           "or --force to delete it and start again, or choose another --output.")
    for name in RUN_OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _describe_run(out: Path, held: list[str]) -> str:
    what = []
    if (out / "adapter").exists():
        what.append("a trained adapter")
    ckpt = last_checkpoint(out / "checkpoints")
    if ckpt:
        what.append(f"checkpoints up to step {ckpt.rsplit('-', 1)[-1]}")
    return ", ".join(what) or ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")


def _continue(record: RunRecord, cfg: TrainConfig) -> RunRecord:
    """The record of a resumed run: the run's own, with this resume appended (its checkpoint, and the
    settings it may change and did). Anything else that differs is refused, each difference named.

    Raises:
        BadConfig: settings, data or base other than the run's; nothing is written.
    """
    from training.record import RUN_RECORD_FILE, Resumed, resume_changes, resume_differences

    out = cfg.output_dir
    if not (out / RUN_RECORD_FILE).exists():
        raise TrainingError(f"{out}: no {RUN_RECORD_FILE}, so --resume cannot check this run's settings are the "
                            "ones it was trained with. Start it again with --force.")
    old = RunRecord.read(out)
    diffs = resume_differences(old, record)
    if diffs:
        raise BadConfig(f"--resume: {out} was trained with other settings than these: {'; '.join(diffs)}. Resume "
                        "with the run's own settings, or start a new run (another --output, or --force).")
    step = int(last_checkpoint(out / "checkpoints").rsplit("-", 1)[-1])
    changed = resume_changes(old, record)
    if {"--epochs", "--max-steps"} & set(changed):
        log.warning("--resume with another length (%s): the learning-rate schedule is recomputed for it from step %d",
                    ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in changed.items() if k in ("--epochs", "--max-steps")),
                    step)
    new_versions = record.versions if record.versions != old.versions else {}
    return old.model_copy(update={
        "config": cfg, "base_model": record.base_model, "result": None,
        "resumes": [*old.resumes, Resumed(from_step=step, changed=changed, versions=new_versions)],
    })


def _absolute(base: str) -> str:
    """A local base as an absolute path (a Hub id unchanged)."""
    p = Path(base).expanduser()
    return str(p.resolve()) if p.exists() else base


def auto_checkpointing(model, cfg: TrainConfig) -> bool:
    """Gradient checkpointing when the run's batch would not fit this machine's memory without it
    (`training.memory.needs_checkpointing`); by the model's size (`CHECKPOINTING_FROM`) when its memory
    cannot be estimated (a config the estimate cannot read, prefix tuning). Logs why."""
    from training.memory import METHODS, ModelShape, machine_memory_gib, needs_checkpointing

    try:
        shape = ModelShape.from_config(model.config) if cfg.method in METHODS else None
    except BadConfig:
        shape = None
    if shape is None:
        on = model.num_parameters() >= CHECKPOINTING_FROM
        log.info("gradient checkpointing %s: the memory of this model or method is not estimated; by size "
                 "(%s parameters)", "on" if on else "off", f"{model.num_parameters():,}")
        return on
    device, gib = machine_memory_gib()
    on, why = needs_checkpointing(shape, cfg.method, cfg.max_length, cfg.batch_size, gib, device=device,
                                  lora_r=cfg.lora_r, lora_dropout=cfg.lora_dropout)
    log.info("gradient checkpointing %s: %s", "on" if on else "off", why)
    return on


def _trackers(cfg: TrainConfig) -> list[str]:
    return [r for r in cfg.report_to if r != "none" and _tracker_available(r)]


def _tensorboard(cfg: TrainConfig) -> list:
    """TensorBoard, written to `<output_dir>/tensorboard` (transformers would bury it under checkpoints/)."""
    if "tensorboard" not in _trackers(cfg):
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(cfg.output_dir / "tensorboard")))]


def _tracker_available(name: str) -> bool:
    import importlib.util

    if importlib.util.find_spec(name) is None:
        log.warning("report_to %r: the %r package is not installed; skipping it", name, name)
        return False
    return True
