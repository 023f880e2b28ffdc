"""Checks on a tokenizer's chat template and on chat examples, shared by SFT, the dataset tools and the
CLI: does the template mark assistant turns, does a trained model stop (EOS), do prompts fit, and how
many tokens a record is in the target model's own template."""

from __future__ import annotations

import logging
from collections.abc import Callable

from training.errors import TrainingError

log = logging.getLogger(__name__)


def has_generation_markers(tokenizer) -> bool:
    """Whether the chat template marks assistant turns with {% generation %} (needed for
    assistant-only loss over whole conversations)."""
    template = tokenizer.chat_template or ""
    return "{% generation %}" in template or "{%- generation %}" in template


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


def record_counter(base: str) -> tuple[Callable[[dict], int], int]:
    """`(count_tokens(canonical record), the model's context length)` in `base`'s tokenizer: text
    records as plain text, chats and preference pairs through the chat template, as training sees them."""
    from transformers import AutoConfig

    from training.base_model import load_tokenizer, resolve

    tok = load_tokenizer(base)
    ctx = getattr(AutoConfig.from_pretrained(resolve(base)), "max_position_embeddings", None) or tok.model_max_length

    def count(rec: dict) -> int:
        if "text" in rec:
            return len(tok(rec["text"], add_special_tokens=False)["input_ids"])
        msgs = rec["messages"] if "messages" in rec else [*rec["prompt"], *rec["chosen"]]
        return len(tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"])

    return count, ctx


def text_counter(base: str) -> Callable[[str], int]:
    """count_tokens(text) in `base`'s tokenizer (no special tokens)."""
    from training.base_model import load_tokenizer

    tok = load_tokenizer(base)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
