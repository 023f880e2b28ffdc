"""Does one model reproduce another? The check `onboard merge` and `onboard export` both make.

Merging folds an adapter into the base weights; exporting rewrites the weights in another format
(GGUF, ONNX). Either way the result must still behave like the model it came from, and the way to
tell is the same: feed both the same token ids and compare their next-token logits at every
position. This module measures that agreement once, so that "top-1 agreement", "max logit
difference" and "min logit cosine" mean the same thing in a merge's model card and in an export's
sidecar. Each caller keeps its own bar and its own error (merging and rounding to 8 bits deserve
different tolerances), and merge also compares greedy continuations.

It lives outside both commands (and imports neither) so that neither depends on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

SAMPLE_PROMPTS = ["How long do I have to return an item?", "退款多久能到账？"]
"""User messages (English and Chinese) rendered with the chat template: what the server sends."""


@dataclass(frozen=True)
class LogitAgreement:
    """How closely a candidate model's next-token logits follow a reference's, over sample positions."""

    top1_agreement: float
    """Share of positions where both predict the same next token."""
    max_logit_diff: float
    """Largest absolute difference between any two corresponding logits."""
    min_logit_cosine: float
    """Smallest cosine similarity between the two logit vectors at one position."""
    positions: int
    """Positions compared (the sum of the sequences' lengths)."""

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def compare_logits(reference: Sequence[Any], candidate: Sequence[Any]) -> LogitAgreement:
    """Compare two models' logits, given as one `[seq, vocab]` tensor per sample sequence, pairwise.

    Raises:
        ValueError: the two lists are of different lengths.
    """
    import torch

    pairs = list(zip(reference, candidate, strict=True))
    agree = torch.cat([(a.argmax(-1) == b.argmax(-1)).float() for a, b in pairs]).mean().item()
    diff = max((a - b).abs().max().item() for a, b in pairs)
    cos = min(torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item() for a, b in pairs)
    return LogitAgreement(agree, diff, cos, sum(a.shape[0] for a in reference))


def chat_prompt_ids(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt as a user turn rendered by the chat template, ready for the answer."""
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def next_token_logits(model, ids: Sequence[list[int]]) -> list:
    """The model's logits (float32, on CPU, `[seq, vocab]`) for each token id list, one sequence per
    forward pass, so there is no padding to mask."""
    import torch

    with torch.no_grad():
        return [model(torch.tensor([i], device=model.device)).logits[0].float().cpu() for i in ids]


def greedy_continuations(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> list[list[int]]:
    """The token ids each chat-rendered prompt's greedy answer starts with (`max_new_tokens` at most)."""
    import torch

    outs = []
    with torch.no_grad():
        for p in prompts:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True).to(model.device)
            g = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                               pad_token_id=tokenizer.pad_token_id)
            outs.append(g[0, ids["input_ids"].shape[1]:].tolist())
    return outs


def greedy_match(reference: Sequence[list[int]], candidate: Sequence[list[int]]) -> float:
    """Share of prompts whose greedy continuations are identical."""
    return sum(a == b for a, b in zip(reference, candidate, strict=True)) / len(reference)
