"""Score only the positions that carry a loss: the LM head on answer tokens, not on the whole prompt.

TRL's SFT and DPO trainers patch the model with a fused, chunked LM head
(`trl.trainer.utils.add_fused_lm_head`) so the `(batch, seq, vocab)` logits are never built. On
CUDA/XPU it projects only the positions whose label is not -100, in Triton; everywhere else (CPU
included) it projects *every* position, masks afterwards, and folds each 32k-wide vocabulary tile
through several elementwise passes. With assistant-only loss on RAG prompts the answer is a small
fraction of the tokens and Qwen's vocabulary is 152k wide, so on CPU that head is a third of a step:
on the 0.5B model, 1,536 positions cost 15 s forward+backward in TRL's head against 0.5 s for 160
answer positions done plainly.

`compact_lm_head(model)` (off CUDA/XPU) replaces the patched forward with one that keeps TRL's
contract (a `FusedCausalLMOutput` whose per-token fields are zero on ignored positions) but gathers
the labelled positions first, then projects them `CHUNK` at a time, so memory stays at one chunk's
logits however many positions are labelled (CPT labels every one). With a frozen head (every adapter
method) the hidden-state gradient is formed in the forward, so nothing is recomputed; a trainable head
(full fine-tune) recomputes each chunk in backward. Only the log-probabilities carry gradient; the
other fields are metrics.
"""

from __future__ import annotations

import functools
import types

CHUNK = 256
"""Labelled positions projected at once: 256 x 152k fp32 logits is 156 MB, and a chunk holds about
three such tensors at its peak."""


FIELDS = ("log_probs", "entropy", "is_top1", "mean_logits", "log_sum_sq_probs")
"""What `score` returns per position: the first with gradient, the rest metrics (SFT logs entropy and
top-1 accuracy; DPO adds the mean logit and, for WPO weighting, log(sum p^2))."""


def _metrics(logits, log_p, targets) -> tuple:
    """entropy, is_top1, mean_logits, log_sum_sq_probs: the FIELDS after log_probs (no gradient)."""
    import torch

    p = log_p.exp()
    return -(p * log_p).sum(-1), logits.argmax(-1) == targets, logits.mean(-1), torch.logsumexp(2 * log_p, -1)


def _chunk_logprobs(hidden, weight, bias, targets):
    """The FIELDS for one chunk of positions, through autograd (for a trainable head)."""
    import torch
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias).float()
    log_probs = -F.cross_entropy(logits, targets, reduction="none")
    with torch.no_grad():
        return (log_probs, *_metrics(logits, torch.log_softmax(logits, -1), targets))


@functools.cache
def _frozen_head():
    """An autograd function for a frozen head (every adapter method): the gradient of each log-prob
    with respect to its hidden state, (onehot - p) @ W, is computed in the forward, chunk by chunk,
    and kept ([positions, hidden], small); backward only scales it. Nothing is recomputed and no
    chunk's logits outlive the chunk."""
    import torch
    import torch.nn.functional as F

    class FrozenHeadLogProbs(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, chunk):
            ctx.set_materialize_grads(False)
            fields, jacobian = [], []
            with torch.no_grad():
                for i in range(0, hidden.shape[0], chunk):
                    h, t = hidden[i:i + chunk], targets[i:i + chunk]
                    logits = F.linear(h, weight, bias).float()
                    log_p = torch.log_softmax(logits, -1)
                    fields.append((log_p.gather(-1, t[:, None]).squeeze(-1), *_metrics(logits, log_p, t)))
                    del logits
                    d = log_p.exp_().neg_()  # reuses log_p's memory: -p
                    d[torch.arange(len(t), device=d.device), t] += 1  # d log p_t / d logits = onehot(t) - p
                    jacobian.append((d.to(weight.dtype) @ weight).to(hidden.dtype))
            out = [torch.cat(f) for f in zip(*fields, strict=True)]
            ctx.save_for_backward(torch.cat(jacobian))
            ctx.mark_non_differentiable(*out[1:])
            return tuple(out)

        @staticmethod
        def backward(ctx, grad_log_probs, *_):
            (jacobian,) = ctx.saved_tensors
            grad = None if grad_log_probs is None else grad_log_probs[:, None].to(jacobian.dtype) * jacobian
            return grad, None, None, None, None

    return FrozenHeadLogProbs


def score(hidden, weight, bias, targets, chunk: int | None = None) -> tuple:
    """The FIELDS for every row of `hidden` (the labelled positions), `chunk` rows at a time (default
    CHUNK). A frozen head goes through `_frozen_head`; a trainable one (full fine-tune), or no rows
    at all (an all-ignored batch: a differentiable zero), through autograd, each chunk but a lone one
    recomputed in backward."""
    import torch
    from torch.utils.checkpoint import checkpoint

    chunk = chunk or CHUNK
    n = hidden.shape[0]
    if n and not (weight.requires_grad or (bias is not None and bias.requires_grad)):
        return _frozen_head().apply(hidden, weight, bias, targets, chunk)
    if n <= chunk:
        return _chunk_logprobs(hidden, weight, bias, targets)
    parts = [checkpoint(_chunk_logprobs, hidden[i:i + chunk], weight, bias, targets[i:i + chunk], use_reentrant=False)
             for i in range(0, n, chunk)]
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


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
              for name, x in zip(FIELDS, score(hidden[mask], head.weight, head.bias, labels[mask]), strict=True)}
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
    if trl_forward is None or _unsupported(model) or model.get_output_embeddings().weight.device.type in ("cuda", "xpu"):
        return False  # on CUDA/XPU TRL's head already scores only the labelled positions, in Triton

    @functools.wraps(type(model).forward)  # generate() validates its kwargs against this signature
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:  # generation and plain calls: TRL's wrapper hands them to the original forward
            return trl_forward(*args, labels=labels, shift_labels=shift_labels, num_items_in_batch=num_items_in_batch,
                               **kwargs)
        return _fused(self, args, kwargs, labels, shift_labels, num_items_in_batch)

    model.forward = types.MethodType(forward, model)
    return True
