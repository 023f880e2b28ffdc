"""The shape of a decoder-only transformer that decides its training memory, and named presets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from training.errors import BadConfig


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
