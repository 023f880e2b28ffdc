"""What the interview recommends for training, from the plan's base model and hardware: the adapter (LoRA or
QLoRA), its rank, the batch, accumulation, sequence length, epochs and learning rate, with the memory estimate
of `training.memory` and the reasons, in English and Chinese.

    hw = detect_hardware()                                   # this machine: CPU or GPUs, and memory
    plan = recommended(Plan(base_model="tiny", hardware=hw))  # plan.method, plan.training filled in
    print(explain(plan, "en"))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from agent.interview.plan import Hardware, Plan, Training

log = logging.getLogger(__name__)

EFFECTIVE_BATCH = 4
"""Sequences per optimizer step (agent.pipeline.DEFAULT_EFFECTIVE_BATCH)."""
KNOWN_SHAPES = {"tiny": "tiny", "qwen2.5-coder-0.5b-instruct": "qwen2.5-0.5b"}
"""Base models the plan names, and the `training.memory` preset with their dimensions (Qwen2.5-Coder-0.5B has
Qwen2.5-0.5B's)."""
TINY = Training(lora_r=16, batch_size=4, gradient_accumulation_steps=1, max_length=1024, epochs=30.0,
                learning_rate=3e-3)
"""The tiny model learns its answers by heart: many passes at a high rate (what `onboard demo` trains)."""
REAL_EPOCHS, REAL_LR = 2.0, 2e-4


@dataclass(frozen=True)
class Memory:
    """The memory estimate behind a recommendation."""

    peak_gib: float
    budget_gib: float
    device: str
    gradient_checkpointing: bool


def detect_hardware() -> Hardware:
    """This machine: its first GPU's memory and how many GPUs (CUDA), else its RAM (training.memory)."""
    import os

    import torch

    ram = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    if torch.cuda.is_available():
        gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        return Hardware(device="cuda", gpus=torch.cuda.device_count(), gpu_memory_gib=round(gib, 1), memory_gib=ram)
    return Hardware(device="cpu", memory_gib=ram)


def shape_of(base_model: str):
    """The `training.memory.ModelShape` of the plan's base (a preset, or a model folder's config.json), or None
    when it cannot be read before the model is fetched or converted (a .gguf file)."""
    from training.base_model import hub_snapshot
    from training.memory import ModelShape

    if base_model in KNOWN_SHAPES:
        return ModelShape.preset(KNOWN_SHAPES[base_model])
    folder = Path(base_model).expanduser()
    if not folder.is_dir():
        folder = hub_snapshot(base_model) if "/" in base_model and not base_model.endswith(".gguf") else None
    if folder is None or not (Path(folder) / "config.json").is_file():
        return None
    return ModelShape.from_config(Path(folder))


def recommend(plan: Plan) -> tuple[str, Training, Memory | None]:
    """(method, training values, memory estimate) for the plan's base and hardware.

    LoRA on the 16-bit (GPU) or fp32 (CPU) base when it fits without gradient checkpointing, since it trains
    fastest; else QLoRA's 4-bit base when that fits without; else whichever fits (LoRA first). The batch and accumulation reach 4 sequences per step
    within the memory (training.memory.recommend). Without a readable shape: LoRA and the defaults, no estimate.

    Raises:
        training.errors.DoesNotFit: not even QLoRA at batch 1 fits; the message says what would.
    """
    from training.errors import DoesNotFit
    from training.memory import recommend as fit

    hw = plan.hardware
    device = hw.device
    memory = hw.gpu_memory_gib if device == "cuda" else hw.memory_gib
    base = TINY if plan.base_model == "tiny" else Training(epochs=REAL_EPOCHS, learning_rate=REAL_LR)
    shape = shape_of(plan.base_model)
    if shape is None or memory is None:
        return "lora", base, None
    fits, refused = {}, None
    for method in ("lora", "qlora"):
        try:
            fits[method] = fit(shape, method, base.max_length, memory, target_batch=EFFECTIVE_BATCH,
                               lora_r=base.lora_r, device=device)
        except DoesNotFit as e:
            refused = e  # QLoRA's refusal, the smallest, says best what would fit
    if not fits:
        raise refused
    plain = [m for m in fits if not fits[m].gradient_checkpointing]
    method = plain[0] if plain else next(iter(fits))  # both checkpoint: LoRA, the faster, if it fits
    got = fits[method]
    training = base.model_copy(update={"batch_size": got.batch_size,
                                       "gradient_accumulation_steps": got.gradient_accumulation_steps,
                                       "gradient_checkpointing": got.gradient_checkpointing})
    return method, training, Memory(round(got.estimate.total_gib, 1), round(got.budget_gib, 1), device,
                                    got.gradient_checkpointing)


def recommended(plan: Plan) -> tuple[Plan, Memory | None]:
    """The plan with the recommended method and training values (those the user set are kept)."""
    method, training, memory = recommend(plan)
    update = {}
    if "method" not in plan.answered:
        update["method"] = method
    if "training" not in plan.answered:
        update["training"] = training
    return plan.model_copy(update=update), memory


def explain(plan: Plan, memory: Memory | None, lang: str) -> str:
    """The recommendation in a few lines: what, and why."""
    t, hw = plan.training, plan.hardware
    if hw.device == "cuda":
        where = {"en": f"{hw.gpus} GPU(s) of {hw.gpu_memory_gib:g} GiB", "zh": f"{hw.gpus} 张 {hw.gpu_memory_gib:g} GiB 的显卡"}
    else:
        where = {"en": f"CPU only, {_gib(hw.memory_gib)} GiB RAM", "zh": f"只有 CPU，内存 {_gib(hw.memory_gib)} GiB"}
    adapter = {"lora": {"en": "LoRA on the full-precision base (the fastest that fits)",
                        "zh": "LoRA，基座保持全精度（放得下时最快）"},
               "qlora": {"en": "QLoRA: the base in 4 bits, so it fits", "zh": "QLoRA：基座量化为 4 位，才能放得下"},
               }.get(plan.method, {"en": plan.method, "zh": plan.method})
    if lang == "zh":
        lines = [f"硬件：{where['zh']}", f"方法：{adapter['zh']}，秩 {t.lora_r}",
                 f"批大小 {t.batch_size} × 梯度累积 {t.gradient_accumulation_steps}，序列长度 {t.max_length}，"
                 f"{t.epochs:g} 轮，学习率 {t.learning_rate:g}"]
        if memory is not None:
            lines.append(f"预计峰值内存 {memory.peak_gib:g} GiB（可用预算 {memory.budget_gib:g} GiB）"
                         + ("，开启梯度检查点" if memory.gradient_checkpointing else ""))
        else:
            lines.append("内存：模型下载或转换后才能估算")
        return "\n".join(f"  {x}" for x in lines)
    lines = [f"hardware: {where['en']}", f"method: {adapter['en']}, rank {t.lora_r}",
             f"batch {t.batch_size} x accumulation {t.gradient_accumulation_steps}, sequences up to {t.max_length} "
             f"tokens, {t.epochs:g} epochs, learning rate {t.learning_rate:g}"]
    if memory is not None:
        lines.append(f"estimated peak memory {memory.peak_gib:g} GiB of a {memory.budget_gib:g} GiB budget"
                     + (", with gradient checkpointing" if memory.gradient_checkpointing else ""))
    else:
        lines.append("memory: estimated once the model is fetched or converted")
    return "\n".join(f"  {x}" for x in lines)


def _gib(x: float | None) -> str:
    return "?" if x is None else f"{x:g}"
