"""DPO triples: a good answer (chosen) against the model's own answer (rejected).

Chosen is the teacher's grounded answer, or the document's answer when no teacher is configured;
rejected is what the base model (the one DPO will train) answers to the same served prompt, greedy.
A pair where the model already gives the chosen answer teaches nothing and is skipped. Triples are
in TRL's conversational preference form: prompt / chosen / rejected as message lists.
Feedback recorded by the server adds more pairs (training/data/feedback.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

log = logging.getLogger(__name__)

BATCH = 8


def _same(a: str, b: str) -> bool:
    return re.sub(r"\W+", "", a).lower() == re.sub(r"\W+", "", b).lower()


def _declines_too(example: dict, answer: str) -> bool:
    """Whether the model declines where the example declines, in other words or with more after it: no pair
    (preferring one wording of the decline over another teaches nothing)."""
    if not example["meta"].get("declines"):
        return False
    good, bad = (re.sub(r"\W+", "", t).lower() for t in (example["messages"][-1]["content"], answer))
    return bool(bad) and (good in bad or (bad in good and 2 * len(bad) >= len(good)))


def _blank_starts(tok) -> list[int]:
    """Token ids of a bare newline or space: an answer may not begin with one (see iter_model_answers)."""
    ids = {i for text in ("\n", "\n\n", " ", "  ", "\t") for i in tok.encode(text, add_special_tokens=False)}
    return sorted(i for i in ids if not tok.decode([i]).strip())


def iter_model_answers(base_model: str, prompts: list[list[dict]], max_new_tokens: int = 96):
    """(index, greedy answer) of `base_model` to each prompt, rendered with its chat template, yielded a
    batch at a time so a caller can keep each as it comes (the paraphrase cache does).

    The first token may not be a newline or a space: a weak model's greedy answer is often nothing but
    blank lines, which is no answer to prefer against (an answer that ends at once still can)."""
    import torch

    from training.base_model import load_model, load_tokenizer

    if not prompts:
        return
    tok = load_tokenizer(base_model)
    tok.padding_side = "left"
    model = load_model(base_model, quantization="none")
    model.eval()
    blank = _blank_starts(tok)
    for i in range(0, len(prompts), BATCH):
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts[i : i + BATCH]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                 begin_suppress_tokens=blank)
        for j, g in enumerate(gen):
            yield i + j, tok.decode(g[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def model_answers(base_model: str, prompts: list[list[dict]], max_new_tokens: int = 96,
                  progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Greedy answers of `base_model` to each prompt, rendered with its chat template."""
    out: list[str] = []
    for _, answer in iter_model_answers(base_model, prompts, max_new_tokens):
        out.append(answer)
        if progress and (len(out) % BATCH == 0 or len(out) == len(prompts)):
            progress(len(out), len(prompts))
    return out


_CITE = re.compile(r"\s*\[\d{1,2}\](?!\()")
"""A `[n]` citation marker (not a Markdown link's text), with the space before it."""


def make_triples(examples: list[dict], rejected: list[str]) -> tuple[list[dict], dict]:
    """Turn chat examples (prompt + chosen answer) and the model's answers into triples. Where the example
    declines, the model's answer loses its `[n]` markers: the pair teaches declining, not to stop citing (with
    them, DPO learned to drop citations: cites_source 42.5 % -> 2.5 %, bench/RESULTS.md).

    Returns (triples, counts of pairs skipped: the model already answers right, or says nothing).
    """
    triples, counts = [], {"model-already-right": 0, "model-blank": 0}
    for ex, bad in zip(examples, rejected, strict=True):
        good = ex["messages"][-1]["content"]
        if not bad.strip():  # nothing to prefer against (an untrained model often says nothing)
            counts["model-blank"] += 1
            continue
        if _same(good, bad) or _declines_too(ex, bad):
            counts["model-already-right"] += 1
            continue
        if ex["meta"].get("declines"):
            bad = _CITE.sub("", bad).strip() or bad
        triples.append({
            "prompt": ex["messages"][:-1],
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": bad}],
            "meta": {**ex["meta"], "rule": f"{ex['meta']['rule']}-vs-model"},
        })
    return triples, counts


def answer_over_decline(examples: list[dict], n: int, decline_for: Callable[[str], str], seed: int = 0) -> list[dict]:
    """Up to `n` answerable examples (sampled, seeded) as pairs preferring their answer over the decline
    (`decline_for(language)`, the workspace's wording): the other side of the pairs that teach declining, so
    that DPO learns when to decline, not to always."""
    import random

    if n <= 0 or not examples:
        return []
    return [{"prompt": ex["messages"][:-1], "chosen": [ex["messages"][-1]],
             "rejected": [{"role": "assistant", "content": decline_for(ex["meta"].get("language", "en"))}],
             "meta": {**ex["meta"], "rule": f"{ex['meta']['rule']}-over-decline"}}
            for ex in random.Random(seed).sample(examples, min(n, len(examples)))]
