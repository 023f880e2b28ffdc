"""Supervised fine-tuning (TRL SFTTrainer + PEFT + bitsandbytes): LoRA, QLoRA, DoRA, prefix or full.

    onboard train --base .onboard/base/tiny --data .onboard/data/sft/train.jsonl --method qlora

Reads top to bottom: load the chat dataset (every line checked before a model loads), load the base
as the method needs it, train with loss on the assistant's answers only, checkpoint every
`save_steps` and on SIGTERM, save the adapter, check the model now stops after an answer (EOS), and
record the run (config, dataset hash, base model, library versions, metrics, loss curve).
"""

from __future__ import annotations

import logging
import time

from training.base_model import load_tokenizer, resolve
from training.callbacks import MetricsFile, SigtermCheckpoint
from training.data.files import read_messages_file
from training.errors import TrainingError
from training.lm_head import compact_lm_head
from training.runs import (
    TrainConfig,
    TrainResult,
    check_output,
    finish,
    fp32_adapters_on_cpu,
    is_main_process,
    last_checkpoint,
    load_for,
    peft_config,
    provenance,
    tracker_callbacks,
    trainer_args,
    write_json,
)

log = logging.getLogger(__name__)

SFTRunConfig = TrainConfig
"""SFT reads the shared run config (training/runs.py)."""


def has_generation_markers(tokenizer) -> bool:
    """Whether the chat template marks assistant turns with {% generation %} (needed for
    assistant-only loss over whole conversations)."""
    return "{% generation %}" in (tokenizer.chat_template or "") or "{%- generation %}" in (tokenizer.chat_template or "")


def _dataset(rows: list[list[dict]], markers: bool):
    """Whole conversations when the template marks assistant turns; otherwise prompt/completion pairs
    (TRL then computes the loss on the completion, i.e. the final answer)."""
    from datasets import Dataset

    if markers:
        return Dataset.from_list([{"messages": r} for r in rows])
    return Dataset.from_list([{"prompt": r[:-1], "completion": r[-1:]} for r in rows])


def check_eos(model, tokenizer, messages: list[dict], max_new_tokens: int = 128) -> bool:
    """Generate greedily on a training prompt; True when the model ends its answer with EOS.

    A model that never emits EOS rambles on when served ("generation never stops"): usually the
    chat template or EOS token differs between training and serving.
    """
    import torch

    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else []
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**{k: v.to(model.device) for k, v in prompt.items()}, max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
    if was_training:
        model.train()
    new = out[0, prompt["input_ids"].shape[1]:].tolist()
    return any(t in eos for t in new)


def check_lengths(tokenizer, rows: list[list[dict]], max_length: int, where) -> None:
    """Examples whose prompt alone fills max_length teach nothing (their answer is cut off): TRL drops
    them. Say so, and refuse when that would be every example.

    Raises:
        TrainingError: no example's answer fits.
    """
    long = sum(
        len(tokenizer.apply_chat_template(r[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)
            ["input_ids"]) >= max_length for r in rows)
    if long == len(rows):
        raise TrainingError(f"{where}: every example's prompt is at least --max-length {max_length} tokens, so no "
                            "answer would be trained on. Raise --max-length, or build the data with a smaller --k.")
    if long:
        log.warning("%d of %d examples in %s have prompts of %d+ tokens; they will be skipped", long, len(rows),
                    where, max_length)


def run(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train on `cfg.train_file` and save the adapter to `<output_dir>/adapter`."""
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    base = resolve(cfg.base_model)
    train_rows = read_messages_file(cfg.train_file)  # validates every line before any model loads
    eval_rows = read_messages_file(cfg.eval_file) if cfg.eval_file else None
    check_output(cfg)
    cfg.output_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = load_tokenizer(base)
    check_lengths(tokenizer, train_rows, cfg.max_length, cfg.train_file)
    markers = has_generation_markers(tokenizer)
    if not markers:
        log.warning("the chat template has no {% generation %} markers: training on each conversation's final "
                    "answer only (earlier assistant turns are context)")
    model = load_for(cfg, base)
    prov = provenance(cfg, "sft", base, len(train_rows))
    write_json(cfg.output_dir / "config.json", prov)

    args = SFTConfig(**trainer_args(cfg, bool(eval_rows), model), assistant_only_loss=markers,
                     packing=bool(cfg.packing), padding_free=bool(cfg.packing))
    sigterm = SigtermCheckpoint()
    extra = []
    if cfg.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        extra.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=_dataset(train_rows, markers),
        eval_dataset=_dataset(eval_rows, markers) if eval_rows else None, processing_class=tokenizer,
        peft_config=peft_config(cfg), callbacks=[MetricsFile(cfg.output_dir / "metrics.jsonl"), sigterm, *tracker_callbacks(cfg), *extra,
                                                 *(callbacks or [])],
    )
    fp32_adapters_on_cpu(trainer, cfg)
    compact_lm_head(trainer.model)  # the LM head on labelled positions only (training/lm_head.py)
    trainer.remove_callback(PrinterCallback)  # progress is reported through callbacks, not print()
    out = trainer.train(resume_from_checkpoint=last_checkpoint(cfg.output_dir / "checkpoints") if cfg.resume else None)
    stopped = "sigterm" if sigterm.received else None

    eos_ok = None
    if cfg.check_eos and stopped is None and is_main_process():
        eos_ok = check_eos(trainer.model, tokenizer, train_rows[0])
        if not eos_ok:
            log.warning("after training, the model did not end its answer to a training prompt with EOS; "
                        "train longer, or check the chat template's end-of-turn token is the EOS token")
    return finish(trainer, tokenizer, cfg, out, prov, t0, stopped, eos_ok)
