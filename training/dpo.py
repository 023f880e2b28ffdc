"""Direct preference optimisation (TRL DPOTrainer) on (prompt, chosen, rejected) triples, on a base or
on top of an SFT adapter, with LoRA, QLoRA, DoRA or a full fine-tune.

    onboard train --stage dpo --data .onboard/data/dpo/train.jsonl --init-adapter .onboard/runs/sft/adapter

Reads top to bottom: read the triples, open the run, load the starting model (the base, or the base
with the SFT adapter merged in, so the reference the DPO loss compares against is the SFT model), add
a fresh adapter, train, save, record the run. With a PEFT adapter the reference model is the same
weights with the adapter switched off: no second copy in memory.
"""

from __future__ import annotations

from pathlib import Path

from training.base_model import load_model, load_tokenizer
from training.config import TrainConfig
from training.data.files import read_canonical
from training.errors import AdapterNotFound
from training.runs import RunContext, TrainResult


def read_triples(path) -> list[dict]:
    """Preference triples in TRL's conversational form (prompt/chosen/rejected message lists).

    Raises:
        BadDataset: a record is broken or is not a preference record (file:line).
    """
    return [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in read_canonical(path, "preference")]


def _start_from(cfg: TrainConfig, base: str) -> str:
    """The model DPO starts from: `base`, or base + init_adapter merged and saved in the run folder."""
    if cfg.init_adapter is None:
        return base
    from peft import PeftModel

    from rag.io import publish_dir

    merged = cfg.output_dir / "start"
    if (merged / "config.json").exists():
        return str(merged)
    if not (cfg.init_adapter / "adapter_config.json").exists():
        raise AdapterNotFound(f"{cfg.init_adapter}: not an adapter folder (no adapter_config.json). Pass the "
                              "`adapter` folder of an `onboard train` run.")
    model = PeftModel.from_pretrained(load_model(base), str(cfg.init_adapter)).merge_and_unload()
    with publish_dir(merged) as tmp:
        model.save_pretrained(tmp)
        load_tokenizer(base).save_pretrained(tmp)
    return str(merged)


def run(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train with DPO on `cfg.train_file`; save the adapter (or model) to `<output_dir>/adapter`."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    rows = read_triples(cfg.train_file)
    evals = read_triples(cfg.eval_file) if cfg.eval_file else None
    ctx = RunContext.open(cfg, "dpo", examples=len(rows))

    start = _start_from(cfg, ctx.base)
    ctx.record.start_model = str(Path(start))
    tokenizer = load_tokenizer(start)
    model = ctx.load_model(start)
    trainer = DPOTrainer(
        model=model, args=DPOConfig(**ctx.trainer_args(model, bool(evals)), beta=cfg.beta),
        train_dataset=Dataset.from_list(rows), eval_dataset=Dataset.from_list(evals) if evals else None,
        processing_class=tokenizer, peft_config=ctx.peft_config(), callbacks=ctx.callbacks(callbacks),
    )
    out = ctx.train(trainer, models=(trainer.model, trainer.ref_model))
    return ctx.finish(trainer, tokenizer, out)
