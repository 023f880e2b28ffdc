"""Direct preference optimisation (TRL DPOTrainer) on (prompt, chosen, rejected) triples, on a base or
on top of an SFT adapter, with LoRA, QLoRA, DoRA or a full fine-tune.

    onboard train --stage dpo --data .onboard/data/dpo/train.jsonl --init-adapter .onboard/runs/sft/adapter

Reads top to bottom: read the triples, load the starting model (the base, or the base with the SFT
adapter merged in, so the reference the DPO loss compares against is the SFT model), add a fresh
adapter, train, checkpoint, save, record the run. With a PEFT adapter the reference model is the
same weights with the adapter switched off: no second copy in memory.
"""

from __future__ import annotations

import time
from pathlib import Path

from training.base_model import load_model, load_tokenizer, resolve
from training.callbacks import MetricsFile, SigtermCheckpoint
from training.data.files import read_canonical
from training.errors import BadDataset
from training.io import publish_dir
from training.lm_head import compact_lm_head
from training.runs import (
    TrainConfig,
    TrainResult,
    check_output,
    finish,
    fp32_adapters_on_cpu,
    last_checkpoint,
    load_for,
    peft_config,
    provenance,
    tracker_callbacks,
    trainer_args,
    write_json,
)


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

    merged = cfg.output_dir / "start"
    if (merged / "config.json").exists():
        return str(merged)
    if not (cfg.init_adapter / "adapter_config.json").exists():
        raise BadDataset(f"{cfg.init_adapter}: not an adapter folder (no adapter_config.json). Pass the "
                         "`adapter` folder of an `onboard train` run.")
    model = PeftModel.from_pretrained(load_model(base), str(cfg.init_adapter)).merge_and_unload()
    with publish_dir(merged) as tmp:
        model.save_pretrained(tmp)
        load_tokenizer(base).save_pretrained(tmp)
    return str(merged)


def run(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train with DPO on `cfg.train_file`; save the adapter (or model) to `<output_dir>/adapter`."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    t0 = time.perf_counter()
    base = resolve(cfg.base_model)
    rows = read_triples(cfg.train_file)
    evals = read_triples(cfg.eval_file) if cfg.eval_file else None
    check_output(cfg)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)

    start = _start_from(cfg, base)
    tokenizer = load_tokenizer(start)
    model = load_for(cfg, start)
    prov = provenance(cfg, "dpo", base, len(rows))
    prov["start_model"] = str(Path(start))
    write_json(cfg.output_dir / "config.json", prov)
    args = DPOConfig(**trainer_args(cfg, bool(evals), model), beta=cfg.beta)
    sigterm = SigtermCheckpoint()
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(evals) if evals else None, processing_class=tokenizer,
        peft_config=peft_config(cfg), callbacks=[MetricsFile(cfg.output_dir / "metrics.jsonl"), sigterm, *tracker_callbacks(cfg),
                                                 *(callbacks or [])],
    )
    fp32_adapters_on_cpu(trainer, cfg)
    for m in (trainer.model, trainer.ref_model):  # the LM head on the answers only (training/lm_head.py)
        compact_lm_head(m)
    trainer.remove_callback(PrinterCallback)
    out = trainer.train(resume_from_checkpoint=last_checkpoint(cfg.output_dir / "checkpoints") if cfg.resume else None)
    return finish(trainer, tokenizer, cfg, out, prov, t0, "sigterm" if sigterm.received else None)
