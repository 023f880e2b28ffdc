"""Score only the positions that carry a loss: the LM head on answer tokens, not on the whole prompt.

TRL's SFTTrainer patches the model with a fused, chunked LM head (`trl.trainer.utils.add_fused_lm_head`)
so the `(batch, seq, vocab)` logits are never built. On CUDA it projects only the positions whose label
is not -100; everywhere else (CPU included) it projects *every* position, masks afterwards, and folds
each 32k-wide vocabulary tile through several extra elementwise passes (entropy, top-1). With
assistant-only loss on RAG prompts the answer is a small fraction of the tokens, and Qwen's vocabulary
is 152k wide, so on CPU that head is most of a step: measured on the 0.5B model, 1,536 positions cost
15 s forward+backward in TRL's head against 0.5 s for the 160 answer positions done plainly.

`compact_lm_head(trainer)` replaces the patched forward with one that keeps TRL's contract (a
`FusedCausalLMOutput` with log_probs, entropy, is_top1 and label_mask, zero on ignored positions) but
always gathers the labelled positions first, then projects them `CHUNK` tokens at a time. Chunks are
recomputed in backward (activation checkpointing), so memory stays at one chunk's logits whatever the
number of labelled tokens (CPT labels every token). A lone chunk is kept instead, saving the recompute.
Entropy and top-1 are metrics only, computed without gradient.
"""

from __future__ import annotations

import functools
import types

CHUNK = 1024
"""Labelled positions projected at once: 1024 x 152k fp32 logits is 0.6 GB."""


FIELDS = ("log_probs", "entropy", "is_top1", "mean_logits", "log_sum_sq_probs")
"""What `score` returns per position: the first with gradient, the rest metrics (SFT logs entropy and
top-1 accuracy; DPO adds the mean logit and, for WPO weighting, log(sum p^2))."""


def _chunk_logprobs(hidden, weight, bias, targets):
    """The FIELDS for one chunk of positions."""
    import torch
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias).float()
    log_probs = -F.cross_entropy(logits, targets, reduction="none")
    with torch.no_grad():
        log_p = torch.log_softmax(logits, -1)
        p = log_p.exp()
        entropy = -(p * log_p).sum(-1)
        is_top1 = logits.argmax(-1) == targets
        mean_logits = logits.mean(-1)
        log_sum_sq_probs = torch.logsumexp(2 * log_p, -1)
    return log_probs, entropy, is_top1, mean_logits, log_sum_sq_probs


def score(hidden, weight, bias, targets, chunk: int | None = None):
    """`_chunk_logprobs` over `chunk`-token slices (default CHUNK); every slice but a lone one is
    recomputed in backward."""
    import torch
    from torch.utils.checkpoint import checkpoint

    chunk = chunk or CHUNK
    n = hidden.shape[0]
    if n <= chunk:
        return _chunk_logprobs(hidden, weight, bias, targets)
    parts = [checkpoint(_chunk_logprobs, hidden[i:i + chunk], weight, bias, targets[i:i + chunk], use_reentrant=False)
             for i in range(0, n, chunk)]
    return tuple(torch.cat(p) for p in zip(*parts))


def _fused(self, args, kwargs, labels, shift_labels, num_items_in_batch):
    """TRL's `fused_lm_head=True` forward, scoring only the labelled positions."""
    from trl.trainer.utils import FusedCausalLMOutput

    kwargs["use_cache"] = False
    hidden = self.base_model(*args, **kwargs).last_hidden_state
    if shift_labels is None:
        hidden, labels = hidden[:, :-1], labels[:, 1:]
    else:
        labels = shift_labels
    head = self.get_output_embeddings()
    hidden, labels = hidden.to(head.weight.device), labels.to(head.weight.device)
    mask = labels != -100
    # masked_scatter keeps an all-ignored batch connected to the graph (a differentiable zero)
    fields = {name: x.new_zeros(mask.shape).masked_scatter(mask, x)
              for name, x in zip(FIELDS, score(hidden[mask], head.weight, head.bias, labels[mask]))}
    loss = -fields["log_probs"].sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
    return FusedCausalLMOutput(loss=loss, label_mask=mask, **fields)


def _unsupported(model) -> bool:
    """Models TRL's head handles specially: vision-language wrappers, MoE router losses, scaled or
    soft-capped logits."""
    config = model.config.get_text_config()
    scaled = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
    return (config is not model.config or getattr(config, "output_router_logits", False)
            or any(getattr(config, a, None) is not None for a in scaled)
            or getattr(model, "base_model", model) is model)


def compact_lm_head(model) -> bool:
    """Swap TRL's fused LM head on `model` (a trainer's model or DPO's reference model, PEFT-wrapped
    or not) for the compact one; False (TRL's head stays) when the model has no fused head or is one
    `_unsupported` names."""
    from peft import PeftModel

    if model is None:
        return False
    model = model.get_base_model() if isinstance(model, PeftModel) else model
    trl_forward = model.__dict__.get("forward")  # set by add_fused_lm_head
    if trl_forward is None or _unsupported(model):
        return False

    @functools.wraps(type(model).forward)  # generate() validates its kwargs against this signature
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:  # generation and plain calls: TRL's wrapper hands them to the original forward
            return trl_forward(*args, labels=labels, shift_labels=shift_labels, num_items_in_batch=num_items_in_batch,
                               **kwargs)
        return _fused(self, args, kwargs, labels, shift_labels, num_items_in_batch)

    model.forward = types.MethodType(forward, model)
    return True
