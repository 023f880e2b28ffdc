"""The largest batch that fits a memory budget, with accumulation and checkpointing, and why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from training.config import Method
from training.errors import DoesNotFit
from training.memory.estimate import Device, Dtype, GiB, MemoryEstimate, Optimizer, estimate
from training.memory.shape import ModelShape


@dataclass
class Plan:
    """A batch size, accumulation and checkpointing setting that fits the memory, and why."""

    shape: str
    method: str
    seq_len: int
    memory_gib: float
    """The device's memory (GPU memory, or RAM for device="cpu")."""
    budget_gib: float
    """The part of it the plan may use: memory_gib x safety."""
    batch_size: int
    """Sequences per step per device (the largest that fits, capped at the target effective batch)."""
    gradient_accumulation_steps: int
    effective_batch: int
    """batch_size x gradient_accumulation_steps (per device)."""
    gradient_checkpointing: bool
    estimate: MemoryEstimate
    """The estimate at the chosen setting."""
    notes: list[str] = field(default_factory=list)
    """Why the plan is what it is, and what to watch."""

    def recipe_values(self) -> dict:
        """The recipe keys this plan decides (training/recipes/)."""
        return {"max_length": self.seq_len, "batch_size": self.batch_size,
                "gradient_accumulation_steps": self.gradient_accumulation_steps,
                "gradient_checkpointing": self.gradient_checkpointing}


def _largest_batch(fits, max_batch: int, power_of_two: bool) -> int:
    """The largest batch in 1..max_batch for which fits(batch) holds (0 if none); fits is monotonic."""
    if not fits(1):
        return 0
    b = 1
    while b * 2 <= max_batch and fits(b * 2):
        b *= 2
    if power_of_two:
        return b
    lo, hi = b, min(2 * b - 1, max_batch)  # fits(lo); the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def recommend(shape: ModelShape, method: Method, seq_len: int, gpu_memory_gib: float, *, target_batch: int = 16,
              lora_r: int = 16, lora_dropout: float = 0.05, dtype: Dtype | None = None, device: Device = "cuda",
              optimizer: Optimizer = "adamw", safety: float = 0.9, power_of_two: bool = True,
              max_batch: int = 256, logits: Literal["chunked", "full"] = "chunked") -> Plan:
    """The largest per-device batch that fits, and the accumulation that reaches `target_batch`.

    Checkpointing is switched on only when it is needed: on CUDA when fewer than 4 sequences (or the
    target) fit without it, since a GPU is underused below that and recomputing costs ~30 % more
    compute; on CPU only when not even batch 1 fits (a CPU is compute-bound at batch 1 already).

    Args:
        gpu_memory_gib: the device's memory in GiB (RAM for device="cpu").
        target_batch: the effective batch (sequences per optimizer step per device) to reach.
        dtype: compute dtype; default bf16 on CUDA, fp32 on CPU.
        safety: fraction of the memory the estimate may use (the rest absorbs estimate error and spikes).
        power_of_two: only consider batches 1, 2, 4, ... (else any integer).

    Raises:
        DoesNotFit: batch 1 with checkpointing exceeds the budget; the message names what would fit.
    """
    dtype = dtype or ("bf16" if device == "cuda" else "fp32")
    budget = gpu_memory_gib * GiB * safety

    def est(b: int, ckpt: bool) -> MemoryEstimate:
        return estimate(shape, method, seq_len, b, lora_r, ckpt, dtype, optimizer, device=device,
                        lora_dropout=lora_dropout, logits=logits)

    def largest(ckpt: bool) -> int:
        return _largest_batch(lambda b: est(b, ckpt).total <= budget, max_batch, power_of_two)

    plain, ckpt = largest(False), largest(True)
    enough = 1 if device == "cpu" else min(4, target_batch)
    if plain >= enough or (plain and plain >= ckpt):
        batch, use_ckpt = plain, False
    elif ckpt:
        batch, use_ckpt = ckpt, True
    else:
        raise DoesNotFit(_does_not_fit(shape, method, seq_len, gpu_memory_gib, safety, est(1, True), dtype, device,
                                       lora_r, optimizer))
    batch = min(batch, target_batch)
    accum = math.ceil(target_batch / batch)
    chosen = est(batch, use_ckpt)
    notes = [f"estimated peak {chosen.total_gib:.1f} GiB of a {budget / GiB:.1f} GiB budget "
             f"({gpu_memory_gib:g} GiB x {safety:g})"]
    if use_ckpt:
        without = f"only batch {plain} fits" if plain else "not even batch 1 fits"
        notes.append(f"gradient checkpointing on: without it {without}; it recomputes each layer's forward in "
                     f"backward (~30 % more compute)")
    if accum > 1:
        notes.append(f"gradient accumulation {accum} reaches the effective batch of {batch * accum}")
    notes += _method_notes(shape, method, seq_len, batch, use_ckpt, dtype, device, lora_r, optimizer, chosen)
    if logits == "full" and shape.vocab >= 100_000:
        notes.append(f"full logits: {chosen.logits / GiB:.1f} GiB for a {shape.vocab:,}-token vocabulary; "
                     f"TRL's SFTTrainer computes the loss in tiles instead")
    return Plan(shape.name, method, seq_len, gpu_memory_gib, budget / GiB, batch, accum, batch * accum, use_ckpt,
                chosen, notes)


def machine_memory_gib() -> tuple[Device, float]:
    """("cuda", the first GPU's memory) or ("cpu", the machine's RAM), in GiB."""
    import os

    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_properties(0).total_memory / 2**30
    return "cpu", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def needs_checkpointing(shape: ModelShape, method: Method, seq_len: int, batch: int, memory_gib: float, *,
                        device: Device = "cuda", lora_r: int = 16, lora_dropout: float = 0.05,
                        dtype: Dtype | None = None, safety: float = 0.9) -> tuple[bool, str]:
    """Whether one step at this batch needs gradient checkpointing to fit `memory_gib`, and why.

    Checkpointing recomputes each layer's forward in backward: ~30 % more compute on a GPU, and on a
    2-core CPU the 0.5B model trained 1.5x faster without it (35.0 against 23.4 tokens/s, bench/RESULTS.md).
    So it is on only when the batch would not fit without it.
    """
    dtype = dtype or ("bf16" if device == "cuda" else "fp32")
    budget = memory_gib * GiB * safety
    plain = estimate(shape, method, seq_len, batch, lora_r, False, dtype, device=device, lora_dropout=lora_dropout)
    size = f"batch {batch} x {seq_len} tokens needs about {plain.total_gib:.1f} GiB without it"
    if plain.total <= budget:
        return False, f"{size}, within the {budget / GiB:.1f} GiB budget ({memory_gib:g} GiB x {safety:g})"
    return True, f"{size}, over the {budget / GiB:.1f} GiB budget ({memory_gib:g} GiB x {safety:g})"


def _method_notes(shape, method, seq_len, batch, ckpt, dtype, device, r, optimizer, chosen) -> list[str]:
    def other(m: str) -> MemoryEstimate:
        return estimate(shape, m, seq_len, batch, r, ckpt, dtype, optimizer, device=device)

    if device == "cpu":
        if method == "qlora":
            return [f"on CPU prefer LoRA on an fp32 base (--method lora): bitsandbytes 4-bit matmuls dequantize "
                    f"every weight on every step and are slower on CPU; LoRA needs "
                    f"{other('lora').total_gib:.1f} GiB here instead of {chosen.total_gib:.1f}"]
        if method == "lora":
            return [f"LoRA on an fp32 base: the fastest choice on CPU; QLoRA (--method qlora) remains available "
                    f"and needs {other('qlora').total_gib:.1f} GiB here"]
        return []
    if method in ("lora", "dora"):
        q = other("qlora")
        return [f"QLoRA would need {q.total_gib:.1f} GiB at this batch (4-bit base); LoRA trains faster and "
                f"avoids quantization error"]
    if method == "full":
        return [f"full fine-tuning holds ~16 bytes per parameter before activations "
                f"({(chosen.weights + chosen.trainable) / GiB:.1f} GiB); more GPUs shard it with FSDP or "
                f"ZeRO-3 (deploy/accelerate/)"]
    return []


def _does_not_fit(shape, method, seq_len, memory_gib, safety, at_one, dtype, device, r, optimizer) -> str:
    alternatives = []
    for m in ("qlora", "lora"):
        if m != method:
            e = estimate(shape, m, seq_len, 1, r, True, dtype, optimizer, device=device)
            if e.total <= memory_gib * GiB * safety:
                alternatives.append(f"--method {m} ({e.total_gib:.1f} GiB)")
    shorter = seq_len // 2
    if shorter >= 128:
        e = estimate(shape, method, shorter, 1, r, True, dtype, optimizer, device=device)
        if e.total <= memory_gib * GiB * safety:
            alternatives.append(f"--max-length {shorter} ({e.total_gib:.1f} GiB)")
    alternatives.append("several GPUs sharding the model (FSDP or ZeRO-3: deploy/accelerate/)")
    return (f"{shape.name} {method} at seq {seq_len} needs {at_one.total_gib:.1f} GiB even at batch 1 with gradient "
            f"checkpointing; {memory_gib:g} GiB x {safety:g} safety allows {memory_gib * safety:.1f}. "
            f"Try: {'; '.join(alternatives)}.")
