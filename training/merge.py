"""Merge a LoRA/QLoRA adapter into its base model and save a standalone model folder.

    onboard merge --run .onboard/runs/sft --out .onboard/models/shop-assistant

The base is loaded unquantized (a QLoRA adapter is merged onto the dequantized weights, never onto
4-bit ones), the adapter is applied and folded in, and before anything is written the merged model's
next-token predictions are checked against adapter-on-base on sample prompts.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from training.base_model import ONBOARD_MODEL_FILE, load_model, load_tokenizer, model_info, resolve
from training.errors import MergeVerificationFailed, ModelNotFound
from training.io import publish_dir, refuse_overwrite

log = logging.getLogger(__name__)

SAMPLE_PROMPTS = ["How long do I have to return an item?", "退款多久能到账？"]


@dataclass
class MergeConfig:
    """Which adapter to merge, onto what, and where to write the result."""

    run: Path
    """A training run folder (holding `adapter/`) or an adapter folder."""
    out: Path
    """Output model folder."""
    base_model: str | None = None
    """Base model; default: the one the run was trained on."""
    force: bool = False
    """Replace an existing output folder."""


@dataclass
class MergeResult:
    out: Path
    base_model: str
    top1_agreement: float
    """Share of sample positions where merged and adapter-on-base predict the same next token."""
    max_logit_diff: float
    seconds: float


def _adapter_dir(run: Path) -> Path:
    for cand in (run / "adapter", run):
        if (cand / "adapter_config.json").exists():
            return cand
    raise ModelNotFound(f"{run}: no adapter found (no adapter_config.json). Pass a run folder made by `onboard train`.")


def _logits(model, tokenizer, prompts: list[str]):
    import torch

    outs = []
    with torch.no_grad():
        for p in prompts:
            text = tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
            outs.append(model(**ids).logits[0].float().cpu())
    return outs


def run(cfg: MergeConfig) -> MergeResult:
    """Merge and save; refuse to overwrite `cfg.out` unless `cfg.force`."""
    import torch
    from peft import PeftModel

    t0 = time.perf_counter()
    out, run_dir = Path(cfg.out), Path(cfg.run)
    adapter = _adapter_dir(run_dir)
    refuse_overwrite(out, cfg.force)
    base = cfg.base_model or json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = resolve(base)

    tokenizer = load_tokenizer(base)
    model = PeftModel.from_pretrained(load_model(base, quantization="none"), str(adapter))
    model.eval()
    before = _logits(model, tokenizer, SAMPLE_PROMPTS)
    merged = model.merge_and_unload()
    after = _logits(merged, tokenizer, SAMPLE_PROMPTS)
    agree = torch.cat([(a.argmax(-1) == b.argmax(-1)).float() for a, b in zip(before, after, strict=True)]).mean().item()
    max_diff = max((a - b).abs().max().item() for a, b in zip(before, after, strict=True))
    if agree < 0.99:
        raise MergeVerificationFailed(
            f"merge verification failed: the merged model agrees with adapter+base on only {agree:.1%} of next "
            f"tokens (max logit difference {max_diff:.3g}), so nothing was written to {out}. Merging changed the "
            f"model's outputs, a numerical problem (e.g. a low-precision base): rerun with ONBOARD_DEBUG=1 and "
            f"report it with the run folder {run_dir}."
        )

    run_cfg = run_dir / "config.json"
    info = {
        "kind": "onboard-merged",
        "base_model": model_info(base),
        "adapter": str(adapter.resolve()),
        "training_run": json.loads(run_cfg.read_text()) if run_cfg.exists() else None,
        "verification": {"top1_agreement": agree, "max_logit_diff": max_diff, "prompts": SAMPLE_PROMPTS},
    }
    with publish_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / ONBOARD_MODEL_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False))
    return MergeResult(out, base, agree, max_diff, time.perf_counter() - t0)
