"""Supervised fine-tuning (TRL SFTTrainer + PEFT + bitsandbytes): LoRA, QLoRA, DoRA, prefix or full.

    onboard train --base .onboard/base/tiny --data .onboard/data/sft/train.jsonl --method qlora

Reads top to bottom: load the chat dataset (every line checked before a model loads), open the run
(training/runs.py), load the base as the method needs it, train with loss on the assistant's answers
only, check the model now stops after an answer (EOS), save and record the run.
"""

from __future__ import annotations

import logging

from training.base_model import load_tokenizer
from training.chat_checks import check_eos, check_lengths, has_generation_markers
from training.config import TrainConfig
from training.data.files import read_messages_file
from training.runs import RunContext, TrainResult, is_main_process

log = logging.getLogger(__name__)

SFTRunConfig = TrainConfig
"""SFT reads the one training config (training/config.py)."""

__all__ = ["SFTRunConfig", "TrainConfig", "TrainResult", "check_eos", "has_generation_markers", "run"]


def _dataset(rows: list[list[dict]], markers: bool):
    """Whole conversations when the template marks assistant turns; otherwise prompt/completion pairs
    (TRL then computes the loss on the completion, i.e. the final answer)."""
    from datasets import Dataset

    if markers:
        return Dataset.from_list([{"messages": r} for r in rows])
    return Dataset.from_list([{"prompt": r[:-1], "completion": r[-1:]} for r in rows])


def run(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train on `cfg.train_file` and save the adapter to `<output_dir>/adapter`."""
    from trl import SFTConfig, SFTTrainer

    train_rows = read_messages_file(cfg.train_file)  # validates every line before any model loads
    eval_rows = read_messages_file(cfg.eval_file) if cfg.eval_file else None
    ctx = RunContext.open(cfg, "sft", examples=len(train_rows))

    tokenizer = load_tokenizer(ctx.base)
    check_lengths(tokenizer, train_rows, cfg.max_length, cfg.train_file)
    markers = has_generation_markers(tokenizer)
    if not markers:
        log.warning("the chat template has no {% generation %} markers: training on each conversation's final "
                    "answer only (earlier assistant turns are context)")
    model = ctx.load_model()
    trainer = SFTTrainer(
        model=model, args=SFTConfig(**ctx.trainer_args(model, bool(eval_rows)), assistant_only_loss=markers,
                                    packing=bool(cfg.packing), padding_free=bool(cfg.packing)),
        train_dataset=_dataset(train_rows, markers), eval_dataset=_dataset(eval_rows, markers) if eval_rows else None,
        processing_class=tokenizer, peft_config=ctx.peft_config(), callbacks=ctx.callbacks(callbacks),
    )
    out = ctx.train(trainer)

    eos_ok = None
    if cfg.check_eos and ctx.stopped_by is None and is_main_process():
        eos_ok = check_eos(trainer.model, tokenizer, train_rows[0])
        if not eos_ok:
            log.warning("after training, the model did not end its answer to a training prompt with EOS; "
                        "train longer, or check the chat template's end-of-turn token is the EOS token")
    return ctx.finish(trainer, tokenizer, out, eos_ok)
