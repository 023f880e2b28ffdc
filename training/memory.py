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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from training.config import METHODS as _ALL_METHODS
from training.config import Method
from training.errors import BadConfig, DoesNotFit

GiB = 1024**3
Dtype = Literal["bf16", "fp32"]
Device = Literal["cuda", "cpu"]
Optimizer = Literal["adamw", "adamw_8bit"]
METHODS = tuple(m for m in _ALL_METHODS if m != "prefix")
"""The methods whose memory is modelled (prefix tuning's virtual tokens are not)."""

# TRL 1.16's fused LM head (trl/kernels/chunked_logprob.py): tiles of TOKEN_CHUNK_SIZE tokens x
# _CHUNKED_LOGPROB_CHUNK_SIZE vocabulary entries.
_TOKEN_TILE, _VOCAB_TILE = 4096, 32768
# On CPU Onboard replaces that head with training/lm_head.py: labelled positions in chunks of
# lm_head.CHUNK, about three fp32 temporaries of [chunk, vocab] at a chunk's peak (logits, log p, p).
_CPU_CHUNK_TEMPS = 12
# NF4 with double quantization: 4 bits per weight, an 8-bit absmax per 64-weight block, and an fp32
# absmax per 256 of those blocks (QLoRA paper, section 2).
_NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
CUDA_CONTEXT_GIB = 0.75
"""CUDA context, cuBLAS workspace and kernel images: 0.5-1 GiB that torch's allocator never reports."""
CUDA_ALLOCATOR_SLACK = 0.10
"""PyTorch's caching allocator: fragmentation, as a fraction of the memory that comes and goes each step."""
CPU_RUNTIME_GIB = 0.125
"""CPU: what the process grows by besides tensors once training starts (Trainer, tokenized dataset,
autograd bookkeeping); measured by bench/memory_estimate.py."""
GLIBC_CACHE = 0.6
"""CPU: glibc keeps freed blocks below its mmap threshold (which rises to 32 MiB) for reuse, so RSS
exceeds live tensors by about this fraction of what one step allocates (every layer's activations,
checkpointed or not, and the loss tiles); 0.4-0.9 measured. MALLOC_MMAP_THRESHOLD_=65536 removes it."""

# Bytes per token per decoder layer that autograd keeps, as coef_h * hidden + coef_i * intermediate
# (plus 2 * kv_dim * e for K and V, 4 * (heads + 2) for SDPA's logsumexp and the norms' rsqrt, and for
# adapters 7 * r * a for the LoRA A outputs). Key: (full?, compute bytes e, adapter bytes a, dropout?).
# Measured with saved_tensors_hooks (see the module docstring); the rows differ because:
# - full fine-tuning keeps each linear's input (for its weight gradient); a bf16 model's RMSNorm keeps
#   an fp32 copy of its input, hence 20h rather than 16h;
# - LoRA on a frozen base keeps no input for frozen weights, but each adapter keeps its own input;
#   with dropout > 0 each of the 7 adapters gets its own dropped-out copy (and CPU dropout keeps its
#   noise tensor too), which is why dropout costs more than the base layer itself;
# - fp32 adapters on a bf16 base (PEFT's default, LoRA and DoRA on CUDA) under the Trainer's bf16
#   autocast: each adapter casts its input to fp32 and autocast casts it back (fitted, within 1 %).
_LAYER_COEFFS: dict[tuple[bool, int, int, bool], tuple[int, int]] = {
    (True, 4, 0, False): (32, 16), (True, 2, 0, False): (20, 8),
    (False, 4, 4, False): (24, 16), (False, 4, 4, True): (64, 20),
    (False, 2, 2, False): (16, 8), (False, 2, 2, True): (36, 10),
    (False, 2, 4, False): (26, 9), (False, 2, 4, True): (50, 13),
}


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only transformer (Llama/Qwen/Mistral layout) that decide training memory."""

    name: str
    """A label: the preset name or the config's model type."""
    params: int
    """Total parameters (embeddings and LM head included, counted once when tied)."""
    layers: int
    hidden: int
    intermediate: int
    """MLP width (SwiGLU: gate and up project hidden -> intermediate, down back)."""
    heads: int
    kv_heads: int
    """Key/value heads (fewer than `heads` with grouped-query attention)."""
    vocab: int
    tied_embeddings: bool
    """The LM head shares the input embedding matrix."""
    head_dim: int
    attention_bias: bool = False
    """Q/K/V projections have biases (Qwen2)."""
    hub_id: str | None = None
    """The Hugging Face id this preset describes."""

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_params(self) -> int:
        """Weights of every decoder-layer linear: what "all-linear" LoRA adapts and bitsandbytes quantizes."""
        h, i = self.hidden, self.intermediate
        return self.layers * (h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h + 3 * h * i)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def lora_params(self, r: int) -> int:
        """LoRA parameters on every decoder-layer linear: r x (in + out) per linear."""
        h, i, q, kv = self.hidden, self.intermediate, self.q_dim, self.kv_dim
        return self.layers * r * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h))

    @property
    def linear_outputs(self) -> int:
        """Sum of the output widths of one layer's linears (DoRA keeps one magnitude per output)."""
        return self.q_dim + 2 * self.kv_dim + self.hidden + 2 * self.intermediate + self.hidden

    @classmethod
    def from_dims(cls, name: str, layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int,
                  vocab: int, tied_embeddings: bool, head_dim: int | None = None, attention_bias: bool = False,
                  hub_id: str | None = None) -> ModelShape:
        """A shape from its dimensions; `params` is counted from them (norms and biases included)."""
        hd = head_dim or hidden // heads
        q, kv = heads * hd, kv_heads * hd
        per_layer = hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * intermediate + 2 * hidden
        per_layer += (q + 2 * kv) if attention_bias else 0
        params = vocab * hidden * (1 if tied_embeddings else 2) + layers * per_layer + hidden
        return cls(name, params, layers, hidden, intermediate, heads, kv_heads, vocab, tied_embeddings, hd,
                   attention_bias, hub_id)

    @classmethod
    def from_config(cls, config, name: str | None = None) -> ModelShape:
        """From a transformers `PretrainedConfig`, a config dict, or a config.json / model folder path.

        Raises:
            BadConfig: the config lacks a field this estimate needs (names it).
        """
        if isinstance(config, (str, Path)):
            p = Path(config).expanduser()
            p = p / "config.json" if p.is_dir() else p
            if not p.exists():
                raise BadConfig(f"{p}: no config.json there. Pass a model folder or its config.json.")
            config = json.loads(p.read_text())
        c = config if isinstance(config, dict) else config.to_dict()
        c = c.get("text_config") or c  # multimodal configs nest the language model's
        try:
            heads = c["num_attention_heads"]
            return cls.from_dims(
                name or c.get("model_type", "model"), c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"],
                heads, c.get("num_key_value_heads") or heads, c["vocab_size"], bool(c.get("tie_word_embeddings", False)),
                c.get("head_dim"), bool(c.get("attention_bias", c.get("model_type") == "qwen2")),
            )
        except KeyError as e:
            raise BadConfig(f"model config has no {e.args[0]!r}: memory estimates need a decoder-only "
                             f"transformer config (hidden_size, num_hidden_layers, ...).") from None

    @classmethod
    def preset(cls, name: str) -> ModelShape:
        """A named preset (see `PRESETS`), e.g. "qwen2.5-7b"."""
        try:
            return PRESETS[name.lower()]
        except KeyError:
            raise BadConfig(f"no preset {name!r}; known: {', '.join(PRESETS)}. "
                             f"Or use ModelShape.from_config(MODEL_FOLDER).") from None


def _p(name, hub_id, layers, hidden, inter, heads, kv, vocab, tied, bias=False, head_dim=None) -> ModelShape:
    return ModelShape.from_dims(name, layers, hidden, inter, heads, kv, vocab, tied, head_dim, bias, hub_id)


# From each model's config.json: num_hidden_layers, hidden_size, intermediate_size,
# num_attention_heads, num_key_value_heads, vocab_size, tie_word_embeddings. The parameter count
# computed from them is within 1 % of the one published on the model card (in the comment).
PRESETS: dict[str, ModelShape] = {s.name: s for s in (
    _p("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", 24, 896, 4864, 14, 2, 151936, True, True),  # 0.49B
    _p("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct", 28, 1536, 8960, 12, 2, 151936, True, True),  # 1.54B
    _p("qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct", 36, 2048, 11008, 16, 2, 151936, True, True),  # 3.09B
    _p("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct", 28, 3584, 18944, 28, 4, 152064, False, True),  # 7.61B
    _p("qwen2.5-14b", "Qwen/Qwen2.5-14B-Instruct", 48, 5120, 13824, 40, 8, 152064, False, True),  # 14.7B
    _p("qwen2.5-32b", "Qwen/Qwen2.5-32B-Instruct", 64, 5120, 27648, 40, 8, 152064, False, True),  # 32.5B
    _p("qwen2.5-72b", "Qwen/Qwen2.5-72B-Instruct", 80, 8192, 29568, 64, 8, 152064, False, True),  # 72.7B
    _p("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", 32, 4096, 14336, 32, 8, 128256, False),  # 8.03B
    _p("llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", 80, 8192, 28672, 64, 8, 128256, False),  # 70.6B
    _p("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", 16, 2048, 8192, 32, 8, 128256, True),  # 1.24B
    _p("llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", 28, 3072, 8192, 24, 8, 128256, True),  # 3.21B
    _p("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3", 32, 4096, 14336, 32, 8, 32768, False),  # 7.25B
    # training/tiny.py's defaults; its vocabulary is at most 4096 (fewer merges on a small corpus).
    _p("tiny", None, 4, 256, 704, 4, 4, 4096, True),
)}


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one training step, by term, in bytes."""

    weights: int
    """The model's parameters as stored (4-bit linears + fp32 rest for QLoRA)."""
    quantization: int
    """QLoRA: NF4 block constants, and one linear dequantized at a time for its matmul."""
    trainable: int
    """Trainable parameters (adapters, or nothing extra for full), their gradients and optimizer states."""
    activations: int
    """What autograd keeps for backward across all layers (or layer inputs + one layer, checkpointed)."""
    logits: int
    """LM head and loss working set: a tile of logits (chunked) or the whole [tokens, vocab] (full)."""
    transient: int
    """Other buffers that live during a step (DoRA's weight-norm workspace)."""
    overhead: int
    """CUDA context; on CPU, the runtime's growth once training starts (the imports are not counted)."""
    allocator: int
    """Memory the allocator holds beyond live tensors (CUDA caching allocator; glibc's cache on CPU)."""
    method: str = ""
    seq_len: int = 0
    batch: int = 0
    gradient_checkpointing: bool = False
    device: str = "cuda"

    @property
    def total(self) -> int:
        return (self.weights + self.quantization + self.trainable + self.activations + self.logits + self.transient
                + self.overhead + self.allocator)

    @property
    def total_gib(self) -> float:
        return self.total / GiB

    def breakdown(self) -> dict[str, float]:
        """Each term in GiB, and the total."""
        names = ("weights", "quantization", "trainable", "activations", "logits", "transient", "overhead", "allocator")
        return {**{n: getattr(self, n) / GiB for n in names}, "total": self.total_gib}

    def __str__(self) -> str:
        head = (f"{self.method}, seq {self.seq_len} x batch {self.batch}, checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}, {self.device}")
        return head + "\n" + "\n".join(f"  {k:<13}{v:8.2f} GiB" for k, v in self.breakdown().items())


def _adapter_bytes(method: str, e: int, device: str) -> int:
    """PEFT keeps adapters in fp32; TRL casts QLoRA's to bf16 on CUDA (Onboard casts them back on CPU)."""
    return 2 if method == "qlora" and device == "cuda" and e == 2 else 4


def _layer_bytes_per_token(s: ModelShape, method: str, e: int, a: int, r: int, dropout: float, seq_len: int,
                           attention: str) -> float:
    """Bytes autograd keeps per token in one decoder layer (see _LAYER_COEFFS)."""
    full = method == "full"
    ch, ci = _LAYER_COEFFS[(full, e, 0 if full else a, dropout > 0 and not full)]
    b = ch * s.hidden + ci * s.intermediate + 2 * s.kv_dim * e + 4 * (s.heads + 2)
    if not full:
        b += 7 * r * a  # each adapter's A output (r wide)
    if method == "dora":
        b += 2 * s.linear_outputs * a  # DoRA keeps each linear's base output and its rescaled sum (measured)
    if attention == "eager":
        b += s.heads * seq_len * (4 + e)  # [heads, seq] scores per token: fp32 softmax output + its cast copy
    return b


def estimate(shape: ModelShape, method: Method, seq_len: int, batch: int, lora_r: int = 16,
             gradient_checkpointing: bool = True, dtype: Dtype = "bf16", optimizer: Optimizer = "adamw", *,
             device: Device = "cuda", lora_dropout: float = 0.05, logits: Literal["chunked", "full"] = "chunked",
             attention: Literal["sdpa", "eager"] = "sdpa", master_weights: bool = False) -> MemoryEstimate:
    """Estimate the peak memory of one training step.

    Args:
        method: full (every weight), lora (adapters on a `dtype` base), qlora (adapters on a 4-bit NF4
            base, compute in `dtype`), dora (weight-decomposed LoRA on a `dtype` base).
        seq_len, batch: tokens per sequence and sequences per step (per device).
        gradient_checkpointing: keep only each layer's input and recompute the rest in backward.
        dtype: bf16 (CUDA) or fp32 (CPU, where bf16 matmuls are slow).
        optimizer: adamw (torch AdamW: two moments in each trainable weight's dtype) or adamw_8bit
            (bitsandbytes: 2 bytes per weight).
        device: cuda adds the CUDA context; cpu uses CPU dropout and training/lm_head.py's loss chunks.
        lora_dropout: LoRA dropout (> 0 gives each adapter its own copy of its input).
        logits: "chunked" for TRL's fused LM head (Onboard's trainer); "full" for a plain
            `model(labels=...)` loss, which holds [tokens, vocab] logits, their fp32 upcast and gradient.
        attention: "sdpa" (flash / memory-efficient kernels: no seq x seq term) or "eager".
        master_weights: full fine-tune in bf16 with fp32 master weights and moments (16 bytes per
            parameter) instead of Onboard's pure bf16 (8).

    Returns:
        The breakdown; `.total` and `.total_gib` are the peak.
    """
    if method not in METHODS:
        raise BadConfig(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    if dtype not in ("bf16", "fp32"):
        raise BadConfig(f"dtype must be bf16 or fp32 (got {dtype!r})")
    if optimizer not in ("adamw", "adamw_8bit"):
        raise BadConfig(f"optimizer must be adamw or adamw_8bit (got {optimizer!r})")
    if seq_len < 1 or batch < 1:
        raise BadConfig(f"seq_len and batch must be positive (got {seq_len}, {batch})")
    s, e = shape, 2 if dtype == "bf16" else 4
    a = _adapter_bytes(method, e, device)
    tokens = seq_len * batch

    # Weights: every parameter in the compute dtype, except that QLoRA stores the layer linears in NF4 and
    # prepare_model_for_kbit_training upcasts what bitsandbytes left alone (embeddings, LM head, norms) to fp32.
    if method == "qlora":
        weights = s.linear_params * 0.5 + (s.params - s.linear_params) * 4
        quant = s.linear_params * (_NF4_BYTES - 0.5) + s.hidden * s.intermediate * e  # + one dequantized linear
    else:
        weights, quant = s.params * e, 0

    # Trainable state. Full: gradients in the compute dtype and torch AdamW's two moments in the weights'
    # dtype. Onboard loads the base in bf16 on CUDA, so its full fine-tune is pure bf16 (8 bytes per
    # parameter with the weights); master_weights adds fp32 master weights and moments (mixed precision as
    # DeepSpeed/FSDP do it: 16 bytes). Adapters: weight + gradient + AdamW moments, in the adapter's dtype.
    if method == "full":
        master = master_weights and e == 2
        moments = (2 * (4 if master else e)) if optimizer == "adamw" else 2
        trainable = s.params * (e + moments + (4 if master else 0))
    else:
        n = s.lora_params(lora_r) + (s.layers * s.linear_outputs if method == "dora" else 0)
        trainable = n * (2 * a + (2 * a if optimizer == "adamw" else 2))

    # Activations. Without checkpointing every layer keeps its tensors; with it, each layer keeps its input
    # and one layer at a time is recomputed in backward. Both add the embedding output and the final norm.
    layer = _layer_bytes_per_token(s, method, e, a, lora_r, lora_dropout, seq_len, attention)
    edges = s.hidden * e + 2 * s.hidden * 4
    per_token = (s.layers * s.hidden * e + layer) if gradient_checkpointing else s.layers * layer
    activations = tokens * (per_token + edges)

    # Logits. TRL's fused head (CUDA) projects [4096 tokens x 32768 vocab] tiles, never the whole
    # [tokens, vocab]; it accumulates the hidden-state gradient (and, for full, the LM head's) in fp32.
    # On CPU, training/lm_head.py projects chunks of CHUNK labelled positions (at most every token, as
    # here) and keeps a [tokens, hidden] gradient. A plain loss keeps the logits (e), their fp32 upcast
    # (transformers' ForCausalLMLoss), the fp32 log-softmax for backward and the fp32 gradient: with a
    # 150k vocabulary this is the largest activation of all.
    if logits == "chunked":
        if device == "cpu":
            from training.lm_head import CHUNK

            logit_bytes = min(tokens, CHUNK) * s.vocab * _CPU_CHUNK_TEMPS + 2 * tokens * s.hidden * 4
        else:
            logit_bytes = min(tokens, _TOKEN_TILE) * min(s.vocab, _VOCAB_TILE) * e + tokens * s.hidden * 4
        logit_bytes += s.vocab * s.hidden * 4 if method == "full" else 0
    else:
        logit_bytes = tokens * s.vocab * (e + (4 if e != 4 else 0) + 8)

    # DoRA: PEFT builds an identity of in_features^2 to read the adapter's weight, adds it to the base weight
    # and takes column norms: about in^2 + 2 x in x out for the widest linear (down_proj), one at a time.
    transient = (s.intermediate**2 + 2 * s.intermediate * s.hidden) * a if method == "dora" else 0

    if device == "cuda":
        overhead = CUDA_CONTEXT_GIB * GiB
        allocator = CUDA_ALLOCATOR_SLACK * (activations + logit_bytes + transient + quant)
    else:
        overhead = CPU_RUNTIME_GIB * GiB
        allocator = GLIBC_CACHE * (tokens * (s.layers * layer + edges) + logit_bytes + transient + quant)
    return MemoryEstimate(int(weights), int(quant), int(trainable), int(activations), int(logit_bytes),
                          int(transient), int(overhead), int(allocator), method, seq_len, batch,
                          gradient_checkpointing, device)


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
