"""Merge a LoRA/QLoRA adapter into its base model and save a standalone model folder.

    onboard merge --run .onboard/runs/sft --out .onboard/models/shop-assistant

The base is loaded unquantized (a QLoRA adapter is merged onto the dequantized weights, never onto
4-bit ones), the adapter is applied and folded in, and before anything is written the merged model's
next-token predictions are checked against adapter-on-base on sample prompts: top-1 agreement,
cosine similarity of the logits, and the greedy continuations themselves. A full fine-tune's run
already holds a whole model: it is copied with the same provenance. Prefix tuning cannot be folded
into the weights and is refused with what to do instead.
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
GREEDY_TOKENS = 24


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
    logit_cosine: float = 1.0
    """Smallest cosine similarity between merged and adapter-on-base logits over sample positions."""
    greedy_match: float = 1.0
    """Share of sample prompts whose greedy continuation (GREEDY_TOKENS tokens) is identical."""


def _adapter_dir(run: Path) -> Path:
    for cand in (run / "adapter", run):
        if (cand / "adapter_config.json").exists() or (cand / "config.json").exists():
            return cand
    raise ModelNotFound(f"{run}: no adapter found (no adapter_config.json). Pass a run folder made by `onboard train`.")


def _greedy(model, tokenizer, prompts: list[str]) -> list[list[int]]:
    import torch

    outs = []
    with torch.no_grad():
        for p in prompts:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True).to(model.device)
            g = model.generate(**ids, max_new_tokens=GREEDY_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            outs.append(g[0, ids["input_ids"].shape[1]:].tolist())
    return outs


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
    if cfg.base_model:
        base = cfg.base_model
    elif (adapter / "adapter_config.json").exists():
        base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    else:  # full fine-tune: the run records its base
        base = json.loads((run_dir / "config.json").read_text())["config"]["base_model"]
    base = resolve(base)

    tokenizer = load_tokenizer(base)
    if not (adapter / "adapter_config.json").exists():  # a full fine-tune: already a whole model
        model = load_model(str(adapter), quantization="none")
        merged, before, greedy_before = model, None, None
    else:
        peft_type = json.loads((adapter / "adapter_config.json").read_text()).get("peft_type")
        if peft_type not in ("LORA", None):
            raise MergeVerificationFailed(
                f"{adapter}: a {peft_type} adapter cannot be folded into the base weights. Serve it on its base "
                "(engines that take adapters), or train with --method lora/dora/qlora to get a mergeable model.")
        model = PeftModel.from_pretrained(load_model(base, quantization="none"), str(adapter))
        model.eval()
        before = _logits(model, tokenizer, SAMPLE_PROMPTS)
        greedy_before = _greedy(model, tokenizer, SAMPLE_PROMPTS)
        merged = model.merge_and_unload()
    merged.eval()
    after = _logits(merged, tokenizer, SAMPLE_PROMPTS)
    greedy_after = _greedy(merged, tokenizer, SAMPLE_PROMPTS)
    before = before or after
    greedy_before = greedy_before or greedy_after
    agree = torch.cat([(a.argmax(-1) == b.argmax(-1)).float() for a, b in zip(before, after, strict=True)]).mean().item()
    max_diff = max((a - b).abs().max().item() for a, b in zip(before, after, strict=True))
    cosine = min(torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item()
                 for a, b in zip(before, after, strict=True))
    greedy = sum(a == b for a, b in zip(greedy_before, greedy_after, strict=True)) / len(SAMPLE_PROMPTS)
    log.info("merge check: top-1 %.3f, min cosine %.6f, greedy match %.2f, max logit diff %.3g",
             agree, cosine, greedy, max_diff)
    if agree < 0.99 or cosine < 0.999:
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
        "verification": {"top1_agreement": agree, "max_logit_diff": max_diff, "min_logit_cosine": cosine,
                         "greedy_match": greedy, "greedy_tokens": GREEDY_TOKENS, "prompts": SAMPLE_PROMPTS},
    }
    with publish_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / ONBOARD_MODEL_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False))
    return MergeResult(out, base, agree, max_diff, time.perf_counter() - t0, cosine, greedy)
