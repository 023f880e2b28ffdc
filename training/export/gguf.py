"""Write a model as one llama.cpp GGUF file, and keep it only if it reads back as the same model.

The file is written with the `gguf` package's writer, the way llama.cpp's `convert_hf_to_gguf.py`
writes the llama (Llama, Mistral) and qwen2 architectures: the same metadata keys, tensor names,
per-tensor types (norms and biases stay F32) and the rotary Q/K row permutation for llama. The
tokenizer must be a byte-level BPE (Qwen2, Llama 3, Mistral Tekken, GPT-2 style, Onboard's tiny
model); SentencePiece vocabularies (Llama 2, Mistral 7B) are refused, as are rope scalings
transformers cannot read back.

Before a file is kept it is read back with transformers (`from_pretrained(..., gguf_file=...)`, the
same reader `training/gguf.py` imports with) and compared with the source model on sample prompts:
the GGUF tokenizer must produce the same token ids, and the next-token logits must agree (top-1 and
cosine, with thresholds per dtype). It is written under a hidden scratch name in the same folder and
renamed into place only then, so a file that fails is deleted, never left under the real name.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.io import publish_file
from training.compare import LogitAgreement, next_token_logits
from training.errors import ExportError, ExportVerificationFailed
from training.export.verify import Source, check

log = logging.getLogger(__name__)

GgufDtype = Literal["f32", "f16", "q8_0"]
# Hugging Face class -> llama.cpp architecture. llama.cpp writes Mistral as llama (same network, no sliding window).
GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
# Each dtype's bar: (least top-1 agreement, least cosine of the logits). Q8_0 rounds every weight to 8 bits.
# Random tiny models, whose logits are nearly flat, measure f16 1.0 / 0.9999998 and q8_0 0.95-0.98 / 0.99995.
GGUF_THRESHOLDS = {"f32": (0.99, 0.99999), "f16": (0.97, 0.9999), "q8_0": (0.90, 0.995)}
# tokenizer.json `Split` regex -> llama.cpp's tokenizer.ggml.pre (llama.cpp matches these by hashing a
# test string; reading the regex gives the same answer for these families without tokenizing anything).
PRE_TOKENIZERS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "qwen2",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+":
        "llama-bpe",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}"
    r"\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+": "tekken",
}
# The string llama.cpp's converter tokenizes to tell pre-tokenizers apart: the GGUF's tokenizer must split it the same.
PRE_TOKENIZER_PROBE = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 "
    "333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= "
    "нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll "
    "make it, 'D you like some tea? We'Ve a'lL")


@dataclass
class GgufExport:
    """What writing and verifying a GGUF found."""

    checks: LogitAgreement
    tokenizer_match: bool
    """The GGUF's own tokenizer gives the source's token ids on the samples and llama.cpp's probe."""
    tensor_types: dict[str, int]
    """How many tensors of each type were written."""


def refuse_unsupported(folder: Path) -> None:
    """Raise ExportError for what cannot be written (architecture, rope scaling, tokenizer), from the
    config and tokenizer files alone: before the weights are loaded."""
    from transformers import AutoConfig

    _gguf_arch(AutoConfig.from_pretrained(str(folder)))
    _pre_tokenizer(folder)


def _gguf_arch(config) -> str:
    """llama.cpp's architecture name for this model, or ExportError saying what is supported."""
    hf_arch = (config.architectures or ["?"])[0]
    if hf_arch not in GGUF_ARCHITECTURES:
        raise ExportError(f"GGUF export supports {', '.join(sorted(GGUF_ARCHITECTURES))} (llama.cpp's llama and "
                          f"qwen2 architectures); this model is {hf_arch} ({config.model_type}). Use llama.cpp's "
                          f"convert_hf_to_gguf.py for other families, or --format onnx.")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise ExportError(f"rope scaling {rope.get('rope_type')!r} is not exported (transformers cannot read it back "
                          f"from a GGUF to verify the file); use llama.cpp's convert_hf_to_gguf.py for this model.")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ExportError(f"hidden_act {config.hidden_act!r}: llama.cpp's {GGUF_ARCHITECTURES[hf_arch]} uses silu.")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ExportError("a llama model with attention_bias/mlp_bias cannot be read back from GGUF by transformers "
                          "to verify it; use llama.cpp's convert_hf_to_gguf.py.")
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    if window and window < config.max_position_embeddings:
        log.warning("sliding_window=%s is dropped, as llama.cpp does: the GGUF attends over the whole context",
                    config.sliding_window)
    return GGUF_ARCHITECTURES[hf_arch]


def _pre_tokenizer(folder: Path) -> str:
    """tokenizer.ggml.pre for a byte-level BPE tokenizer.json, or ExportError naming what was found."""
    path = folder / "tokenizer.json"
    spec = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if model.get("type") == "BPE" and kinds == ["ByteLevel"] and pre.get("use_regex", True):
        if pre.get("add_prefix_space"):
            raise ExportError(f"{path}: ByteLevel add_prefix_space=true is not supported by GGUF export.")
        return "gpt-2"
    if model.get("type") == "BPE" and kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        regex = parts[0].get("pattern", {}).get("Regex")
        if regex in PRE_TOKENIZERS:
            return PRE_TOKENIZERS[regex]
        raise ExportError(f"{path}: byte-level BPE with an unknown split regex {regex!r}; GGUF export knows the "
                          f"Qwen2, Llama 3, Tekken and GPT-2 ones. Use llama.cpp's convert_hf_to_gguf.py.")
    raise ExportError(f"{path if path.is_file() else folder}: GGUF export needs a byte-level BPE tokenizer.json "
                      f"(found model {model.get('type')!r}, pre-tokenizer {kinds}); SentencePiece vocabularies "
                      f"(Llama 2, Mistral 7B) need llama.cpp's convert_hf_to_gguf.py.")


def _vocab(tok, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens and their types by id, padded to the embedding size, as llama.cpp's get_vocab_base does."""
    import gguf

    vocab = tok.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise ExportError(f"the tokenizer has ids up to {max(vocab.values())} but the model only {vocab_size} "
                          f"embeddings; resize the embeddings before exporting.")
    by_id = {i: t for t, i in vocab.items()}
    added, decoder = tok.get_added_vocab(), tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # padding rows of the embedding (Onboard's tiny model rounds to 64)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        token = by_id[i]
        if token in added:
            if not decoder[i].normalized:  # llama.cpp expects added tokens pre-normalized
                token = tok.decode(tok.encode(token, add_special_tokens=False))
            special = decoder[i].special or (token.startswith("<|") and token.endswith("|>"))
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
        tokens.append(token)
    return tokens, types


def _tensor_type(gguf_name: str, shape: tuple[int, ...], dtype: GgufDtype):
    """llama.cpp's choice: norms, biases and 1-D tensors stay F32; Q8_0 rows must be whole 32-blocks."""
    import gguf

    q = gguf.GGMLQuantizationType
    if len(shape) <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight") or dtype == "f32":
        return q.F32
    if dtype == "q8_0" and shape[-1] % gguf.GGML_QUANT_SIZES[q.Q8_0][0] == 0:
        return q.Q8_0
    return q.F16  # f16, or a Q8_0 tensor whose rows are not whole blocks (llama.cpp falls back to F16 too)


def _permute(w, n_head: int):
    """llama.cpp's rotary row order for llama Q/K (its `LlamaModel.permute`; transformers' GGUF reader undoes it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model, arch: str):
    """(gguf name, HF name, shape) for every tensor to write, in the model's order."""
    import gguf

    cfg = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2,
                                     cfg.num_hidden_layers)
    plan = []
    for hf_name, t in model.state_dict().items():
        if (cfg.tie_word_embeddings and hf_name == "lm_head.weight") or hf_name.endswith("rotary_emb.inv_freq"):
            continue  # a tied head is the embedding: llama.cpp reads token_embd when output.weight is absent
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"{hf_name}: no llama.cpp {arch} tensor for it; this model has layers GGUF export "
                              f"does not know. Use llama.cpp's convert_hf_to_gguf.py.")
        plan.append((gguf_name, hf_name, tuple(t.shape)))
    return plan


def write_gguf(model, tok, folder: Path, path: Path, dtype: GgufDtype) -> dict[str, int]:
    """Write `model` (float32, its tokenizer files in `folder`) to `path` as llama.cpp does; return tensor type counts.

    Tensors are converted and written one at a time, so memory stays at the model plus one tensor.
    """
    import gguf
    import numpy as np

    cfg = model.config
    arch = _gguf_arch(cfg)
    pre = _pre_tokenizer(folder)
    tokens, types = _vocab(tok, cfg.vocab_size)
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype]
    rope = getattr(cfg, "rope_parameters", None) or {}

    w = gguf.GGUFWriter(path, arch)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(folder.resolve().name)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    if arch == "llama":  # as llama.cpp's LlamaModel: vocab size, rotary dims, key/value length (= head_dim)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        w.add_vocab_size(cfg.vocab_size)
        w.add_rope_dimension_count(head_dim)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(ftype)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    # merges, bos/eos/pad ids, add_bos_token and the chat template, read from the folder as llama.cpp does
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=cfg.vocab_size).add_to_gguf(w, quiet=True)

    plan = [(g, h, s, _tensor_type(g, s, dtype)) for g, h, s in _tensors(model, arch)]
    for g, _, shape, qtype in plan:
        nbytes = math.prod(gguf.quants.quant_shape_to_byte_shape(shape, qtype))
        w.add_tensor_info(g, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
    w.add_size_label(gguf.size_label(*w.get_total_parameter_count()))  # e.g. "494M", as llama.cpp labels it
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    state, heads, kv_heads = model.state_dict(), cfg.num_attention_heads, cfg.num_key_value_heads
    counts: dict[str, int] = {}
    for _, hf_name, _, qtype in plan:
        data = state[hf_name].detach().float().cpu().numpy()
        if arch == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, heads)
        elif arch == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, kv_heads)
        w.write_tensor_data(np.ascontiguousarray(gguf.quants.quantize(data, qtype)))
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    w.close()
    return counts


def export(source: Source, out: Path, dtype: GgufDtype) -> GgufExport:
    """Write `source` to `out` as a `dtype` GGUF, read it back and compare; publish it only if it passes.

    The source's weights are released once written: the read-back dequantizes a second copy, so
    memory peaks near 2-3x the float32 model (5.5 GB at 0.5B).

    Raises:
        ExportVerificationFailed: the read-back tokenizes or predicts differently (the file is removed).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The GGUF writer writes binary tensors to a path of its own, and the file must be read back under a
    # name (ending .gguf) before it is kept: rag.io.publish_file.
    with publish_file(out, suffix=".partial.gguf") as tmp:
        counts = write_gguf(source.model, source.tok, source.folder, tmp, dtype)
        source.release()
        log.info("wrote %s (%s); reading it back with transformers", tmp, counts)
        back_tok = AutoTokenizer.from_pretrained(str(tmp.parent), gguf_file=tmp.name)
        back = AutoModelForCausalLM.from_pretrained(str(tmp.parent), gguf_file=tmp.name, dtype=torch.float32,
                                                    device_map={"": "cpu"}).eval()
        tok = source.tok
        tok_match = all(back_tok(t, add_special_tokens=False)["input_ids"] == tok(t, add_special_tokens=False)["input_ids"]
                        for t in [*source.texts, PRE_TOKENIZER_PROBE])
        if not tok_match:
            raise ExportVerificationFailed(
                f"the GGUF's tokenizer splits text differently from {source.folder}'s tokenizer (sample prompts and "
                f"llama.cpp's pre-tokenizer probe), so llama.cpp would feed the model other tokens; nothing was kept. "
                f"Please report the model's tokenizer.json pre_tokenizer with ONBOARD_DEBUG=1.")
        checks = check(source, next_token_logits(back, source.ids), f"GGUF {dtype}", GGUF_THRESHOLDS[dtype])
        del back
    return GgufExport(checks, tok_match, counts)
