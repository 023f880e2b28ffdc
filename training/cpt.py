"""Continued pre-training: causal LM loss on the documents' own text, packed (TRL SFTTrainer on
`{"text"}` records), with LoRA, QLoRA, DoRA, prefix tuning or a full fine-tune.

    onboard train --stage cpt --data .onboard/data/cpt/train.jsonl --method lora

Reads top to bottom: read the corpus, load the base for the method, pack the text into
`max_length`-token sequences (no padding wasted), train, checkpoint, save, record the run.
"""

from __future__ import annotations

import time

from training.base_model import load_tokenizer, resolve
from training.callbacks import MetricsFile, SigtermCheckpoint
from training.data.files import read_canonical
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


def read_texts(path) -> list[str]:
    """The text of every record of a CPT dataset (`{"text"}` JSONL, a JSON array, or a .txt file).

    Raises:
        BadDataset: a broken record, or one that is not text (file:line).
    """
    return [r["text"] for r in read_canonical(path, "text")]


def run(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Continue pre-training on `cfg.train_file`; save the adapter (or model) to `<output_dir>/adapter`."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    base = resolve(cfg.base_model)
    texts = read_texts(cfg.train_file)
    evals = read_texts(cfg.eval_file) if cfg.eval_file else None
    check_output(cfg)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = load_tokenizer(base)
    model = load_for(cfg, base)
    prov = provenance(cfg, "cpt", base, len(texts))
    write_json(cfg.output_dir / "config.json", prov)
    packing = True if cfg.packing is None else cfg.packing
    # "wrapped": documents are concatenated with EOS between them and cut into max_length blocks, the
    # classic pre-training layout (no padding at all)
    args = SFTConfig(**trainer_args(cfg, bool(evals), model), dataset_text_field="text", packing=packing,
                     packing_strategy="wrapped", completion_only_loss=False)
    sigterm = SigtermCheckpoint()
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": texts}),
        eval_dataset=Dataset.from_dict({"text": evals}) if evals else None, processing_class=tokenizer,
        peft_config=peft_config(cfg), callbacks=[MetricsFile(cfg.output_dir / "metrics.jsonl"), sigterm, *tracker_callbacks(cfg),
                                                 *(callbacks or [])],
    )
    fp32_adapters_on_cpu(trainer, cfg)
    compact_lm_head(trainer.model)  # the LM head on labelled positions only (training/lm_head.py)
    trainer.remove_callback(PrinterCallback)
    out = trainer.train(resume_from_checkpoint=last_checkpoint(cfg.output_dir / "checkpoints") if cfg.resume else None)
    return finish(trainer, tokenizer, cfg, out, prov, t0, "sigterm" if sigterm.received else None)
