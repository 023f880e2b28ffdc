"""Peak training memory, term by term, and the largest batch that fits a GPU.

    from training.memory import ModelShape, estimate, recommend
    shape = ModelShape.preset("qwen2.5-7b")
    print(estimate(shape, "qlora", seq_len=2048, batch=1))          # breakdown in GiB
    plan = recommend(shape, "qlora", seq_len=2048, gpu_memory_gib=24)
    print(plan.batch_size, plan.gradient_accumulation_steps, plan.notes)

The estimate models what Onboard's trainer (training/runs.py: TRL SFTTrainer, PEFT, bitsandbytes)
does, not a generic transformer: the loss is computed in tiles (TRL's fused LM head on CUDA,
training/lm_head.py's chunks of labelled positions on CPU), so the [batch, seq, vocab] logits never
exist; PEFT keeps LoRA adapters in fp32 except that TRL casts QLoRA adapters to bf16 on CUDA;
`prepare_model_for_kbit_training` upcasts every weight bitsandbytes did not quantize (embeddings, LM
head, norms) to fp32. The per-layer activation coefficients were measured by
counting the tensors autograd keeps for backward (`torch.autograd.graph.saved_tensors_hooks`) in
Qwen2 and Llama decoder layers of three shapes (exact, or within 1 % under autocast);
bench/memory_estimate.py checks the whole estimate against measured peaks (bench/RESULTS.md, "Issue 5").

The package: `shape` (ModelShape and PRESETS), `estimate` (the per-term model, MemoryEstimate and its
constants), `plan` (recommend() and Plan; needs_checkpointing() for a given batch), and beside memory, time: `duration` (a run's planned tokens,
its duration from a timed first step, and what would shorten a long one).
"""

from training.config import Method
from training.errors import DoesNotFit
from training.memory.duration import (
    LONG_RUN_S,
    RunSize,
    describe_size,
    duration_s,
    human_duration,
    suggestions,
)
from training.memory.estimate import (
    CPU_RUNTIME_GIB,
    CUDA_ALLOCATOR_SLACK,
    CUDA_CONTEXT_GIB,
    GLIBC_CACHE,
    METHODS,
    Device,
    Dtype,
    GiB,
    MemoryEstimate,
    Optimizer,
    estimate,
)
from training.memory.plan import Plan, machine_memory_gib, needs_checkpointing, recommend
from training.memory.shape import PRESETS, ModelShape

__all__ = [
    "CPU_RUNTIME_GIB", "CUDA_ALLOCATOR_SLACK", "CUDA_CONTEXT_GIB", "GLIBC_CACHE", "LONG_RUN_S", "METHODS", "PRESETS",
    "Device", "DoesNotFit", "Dtype", "GiB", "MemoryEstimate", "Method", "ModelShape", "Optimizer", "Plan", "RunSize",
    "describe_size", "duration_s", "estimate", "human_duration", "machine_memory_gib", "needs_checkpointing",
    "recommend", "suggestions",
]
