"""What every export is checked against, and how: the source model, sample inputs, and the bar.

The source folder is loaded once (float32, CPU) into a `Source`, which holds the tokenizer, the
model until a format releases it, the sample texts and their token ids, and the reference logits;
each format writes from it and then compares its read-back's logits with `check`. The comparison
itself is `training.compare.compare_logits`, the one `onboard merge` uses too.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.compare import SAMPLE_PROMPTS, LogitAgreement, compare_logits, next_token_logits
from training.errors import ExportVerificationFailed
from training.record import base_ref

log = logging.getLogger(__name__)

SAMPLE_TEXT = "Refunds take 5 to 10 working days. 退款多久能到账？"
"""Plain text (no chat template) checked besides the chat-rendered SAMPLE_PROMPTS."""


@dataclass
class Source:
    """The model being exported, loaded once: what the export is written from and compared against."""

    folder: Path
    tok: Any
    model: Any
    """The float32 CPU model; None once `release`d."""
    texts: list[str] = field(default_factory=list)
    """Sample texts: SAMPLE_TEXT and, with a chat template, the rendered SAMPLE_PROMPTS."""
    ids: list[list[int]] = field(default_factory=list)
    """The texts' token ids (no special tokens added)."""
    reference: list = field(default_factory=list)
    """The model's logits for each of `ids`, `[seq, vocab]`: what the export must reproduce."""

    def release(self) -> None:
        """Drop the weights once written: reading the export back needs that memory."""
        self.model = None
        gc.collect()


def load_source(folder: Path) -> Source:
    """Load the tokenizer and the float32 CPU model, and compute the reference logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, device_map={"": "cpu"}).eval()
    texts = sample_texts(tok)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    return Source(folder, tok, model, texts, ids, next_token_logits(model, ids))


def sample_texts(tok) -> list[str]:
    """Chat-rendered sample prompts (what the server sends) and one plain text."""
    texts = [SAMPLE_TEXT]
    if tok.chat_template:
        texts += [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                  for p in SAMPLE_PROMPTS]
    return texts


def check(source: Source, got: list, what: str, bar: tuple[float, float]) -> LogitAgreement:
    """Compare the export's logits `got` with the source's; raise below `bar` (least top-1 agreement,
    least cosine).

    Raises:
        ExportVerificationFailed: the export does not reproduce the model closely enough.
    """
    r = compare_logits(source.reference, got)
    log.info("%s check: top-1 %.4f, min cosine %.6f, max logit diff %.3g", what, r.top1_agreement,
             r.min_logit_cosine, r.max_logit_diff)
    min_agree, min_cos = bar
    if r.top1_agreement < min_agree or r.min_logit_cosine < min_cos:
        raise ExportVerificationFailed(
            f"{what} verification failed: the export agrees with the source model on {r.top1_agreement:.1%} of next "
            f"tokens (needs {min_agree:.0%}), min logit cosine {r.min_logit_cosine:.5f} (needs {min_cos}), max logit "
            f"difference {r.max_logit_diff:.3g}; nothing was kept. Try a wider type (--dtype f16 or f32), and report "
            f"it with ONBOARD_DEBUG=1 if f32 fails too.")
    return r


def provenance(source: Path, fmt: str, dtype: str, checks: dict) -> dict:
    """What an export records beside itself: the source model (with its weights fingerprint), the
    type written, and the verification's numbers and inputs."""
    return {"kind": f"onboard-export-{fmt}", "source_model": base_ref(str(source)).model_dump(mode="json", exclude_none=True), "dtype": dtype,
            "verification": {**checks, "prompts": SAMPLE_PROMPTS, "text": SAMPLE_TEXT},
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
