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

from rag.errors import DiskFull, is_disk_full
from rag.io import human_bytes, publish_dir, require_space
from rag.model_card import MergeVerification, ModelCard
from training.base_model import load_model, load_tokenizer, resolve
from training.compare import (
    SAMPLE_PROMPTS,
    chat_prompt_ids,
    compare_logits,
    greedy_continuations,
    greedy_match,
    next_token_logits,
)
from training.errors import CannotMerge, MergeVerificationFailed, ModelNotFound, UnfinishedRun
from training.io import refuse_overwrite
from training.record import RUN_RECORD_FILE, RunRecord, base_ref

log = logging.getLogger(__name__)

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
    """Replace an existing output folder; merge a run that was stopped or did not finish."""


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


def run(cfg: MergeConfig) -> MergeResult:
    """Merge and save; refuse to overwrite `cfg.out`, or to merge a run that did not finish, unless `cfg.force`."""
    from peft import PeftModel

    t0 = time.perf_counter()
    out, run_dir = Path(cfg.out), Path(cfg.run)
    adapter = _adapter_dir(run_dir)
    refuse_overwrite(out, cfg.force)
    record = RunRecord.read(run_dir) if (run_dir / RUN_RECORD_FILE).exists() else None
    if record is not None and not cfg.force and (record.result is None or record.result.stopped_by):
        how = f"was stopped by {record.result.stopped_by}" if record.result else "never finished"
        raise UnfinishedRun(f"{run_dir}: the run {how}, so its adapter is not the trained model. Continue it with "
                            "`onboard train --resume` (same flags), or pass --force to merge it as it is.")
    if cfg.base_model:
        base = cfg.base_model
    elif record is not None:  # the run's base, found from where its folder is now (a workspace may have moved)
        base = record.trained_on(run_dir)
    elif (adapter / "adapter_config.json").exists():
        base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    else:
        raise ModelNotFound(f"{run_dir}: a whole model without its run record; pass the base with --base.")
    base = resolve(base)

    tokenizer = load_tokenizer(base)
    if not (adapter / "adapter_config.json").exists():  # a full fine-tune: already a whole model
        model = load_model(str(adapter), quantization="none")
        merged, before, greedy_before = model, None, None
    else:
        peft_type = json.loads((adapter / "adapter_config.json").read_text()).get("peft_type")
        if peft_type not in ("LORA", None):
            raise CannotMerge(
                f"{adapter}: a {peft_type} adapter cannot be folded into the base weights. Serve it on its base "
                "(engines that take adapters), or train with --method lora/dora/qlora to get a mergeable model.")
        model = PeftModel.from_pretrained(load_model(base, quantization="none"), str(adapter))
        model.eval()
        before = next_token_logits(model, chat_prompt_ids(tokenizer, SAMPLE_PROMPTS))
        greedy_before = greedy_continuations(model, tokenizer, SAMPLE_PROMPTS, GREEDY_TOKENS)
        merged = model.merge_and_unload()
    merged.eval()
    after = next_token_logits(merged, chat_prompt_ids(tokenizer, SAMPLE_PROMPTS))
    greedy_after = greedy_continuations(merged, tokenizer, SAMPLE_PROMPTS, GREEDY_TOKENS)
    check = compare_logits(before or after, after)
    agree, max_diff, cosine = check.top1_agreement, check.max_logit_diff, check.min_logit_cosine
    greedy = greedy_match(greedy_before or greedy_after, greedy_after)
    log.info("merge check: top-1 %.3f, min cosine %.6f, greedy match %.2f, max logit diff %.3g",
             agree, cosine, greedy, max_diff)
    if agree < 0.99 or cosine < 0.999:
        raise MergeVerificationFailed(
            f"merge verification failed: the merged model agrees with adapter+base on only {agree:.1%} of next "
            f"tokens (max logit difference {max_diff:.3g}), so nothing was written to {out}. Merging changed the "
            f"model's outputs, a numerical problem (e.g. a low-precision base): rerun with ONBOARD_DEBUG=1 and "
            f"report it with the run folder {run_dir}."
        )

    eos = merged.generation_config.eos_token_id
    card = ModelCard(
        kind="onboard-merged",
        description=f"{base} fine-tuned by Onboard ({record.stage} with {record.config.method})" if record
        else f"{base} with the adapter {adapter} merged in by Onboard",
        parameters=merged.num_parameters(),
        eos_token_ids=eos if isinstance(eos, list) else [eos] if eos is not None else [],
        base=base_ref(base),
        run=record.run_ref(run_dir) if record else None,
        rag=record.dataset.rag if record and record.dataset else None,
        verification=MergeVerification(top1_agreement=agree, max_logit_diff=max_diff, min_logit_cosine=cosine,
                                       greedy_match=greedy, greedy_tokens=GREEDY_TOKENS, prompts=SAMPLE_PROMPTS),
        provenance={"adapter": str(adapter.resolve())},
    )
    if record and record.dataset is None:
        log.warning("%s: the training data has no dataset card (not made by `onboard data build`), so the merged "
                    "model does not record how many retrieved chunks its prompts held; serving will use its default",
                    run_dir)
    _save(merged, tokenizer, card, out)
    return MergeResult(out, base, agree, max_diff, time.perf_counter() - t0, cosine, greedy)


def _save(merged, tokenizer, card: ModelCard, out: Path) -> None:
    """Write the merged model to `out` through a temporary folder; a full disk, found before writing (the
    weights' size against the free space) or while writing, leaves nothing behind and says so."""
    needed = sum(t.numel() * t.element_size() for t in merged.state_dict().values())
    require_space(out.parent, needed, "the merged model")
    try:
        with publish_dir(out) as tmp:
            merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            card.write(tmp)
    except Exception as e:
        if is_disk_full(e):
            raise DiskFull(f"{out.parent}: the disk filled up while writing the merged model (about "
                           f"{human_bytes(needed)}); the partial copy was removed and {out} is unchanged. Free some "
                           "space and run `onboard merge` again.") from None
        raise
