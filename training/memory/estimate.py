"""The estimate of one training step's peak memory, term by term (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from training.config import METHODS as _ALL_METHODS
from training.config import Method
from training.errors import BadConfig
from training.memory.shape import ModelShape

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
# Measured with saved_tensors_hooks (see the package docstring); the rows differ because:
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
