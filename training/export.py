"""Export a merged model for other runtimes: a llama.cpp GGUF file, or an ONNX graph.

    onboard export --format gguf --dtype q8_0        # .onboard/models/merged-q8_0.gguf
    onboard export --format onnx                     # .onboard/models/merged-onnx/model.onnx

GGUF is written with the `gguf` package's writer, the way llama.cpp's `convert_hf_to_gguf.py` writes
the llama (Llama, Mistral) and qwen2 architectures: the same metadata keys, tensor names, per-tensor
types (norms and biases stay F32) and the rotary Q/K row permutation for llama. The tokenizer must be
a byte-level BPE (Qwen2, Llama 3, Mistral Tekken, GPT-2 style, Onboard's tiny model); SentencePiece
vocabularies (Llama 2, Mistral 7B) are refused, as are rope scalings transformers cannot read back.

Before a file is kept it is read back with transformers (`from_pretrained(..., gguf_file=...)`, the
same reader `training/gguf.py` imports with) and compared with the source model on sample prompts:
the GGUF tokenizer must produce the same token ids, and the next-token logits must agree (top-1 and
cosine, with thresholds per dtype). A file that fails is deleted, never left under the real name.

ONNX uses `torch.onnx.export` (the dynamo exporter: needs `onnx` and `onnxscript`, the `onnx` extra)
on the plain forward pass, `input_ids [batch, seq] -> logits [batch, seq, vocab]`, float32, without
KV cache or attention mask, and is checked with onnxruntime. Optimum is not used: its ONNX exporter
(`optimum-onnx`) requires transformers < 4.58, and older `optimum` releases fail to import with
transformers 5.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from training.base_model import model_info
from training.errors import BadConfig, ExportError, ExportVerificationFailed
from training.io import publish_dir, refuse_overwrite
from training.merge import SAMPLE_PROMPTS

log = logging.getLogger(__name__)

ExportFormat = Literal["gguf", "onnx"]
GgufDtype = Literal["f32", "f16", "q8_0"]
EXPORT_FILE = "onboard_export.json"
# Hugging Face class -> llama.cpp architecture. llama.cpp writes Mistral as llama (same network, no sliding window).
GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
# Each dtype's bar: (least top-1 agreement, least cosine of the logits). Q8_0 rounds every weight to 8 bits.
# Random tiny models, whose logits are nearly flat, measure f16 1.0 / 0.9999998 and q8_0 0.95-0.98 / 0.99995.
GGUF_THRESHOLDS = {"f32": (0.99, 0.99999), "f16": (0.97, 0.9999), "q8_0": (0.90, 0.995)}
ONNX_THRESHOLD = (0.99, 0.9999)
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
SAMPLE_TEXT = "Refunds take 5 to 10 working days. 退款多久能到账？"
# The string llama.cpp's converter tokenizes to tell pre-tokenizers apart: the GGUF's tokenizer must split it the same.
PRE_TOKENIZER_PROBE = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 "
    "333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= "
    "нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll "
    "make it, 'D you like some tea? We'Ve a'lL")


@dataclass
class ExportConfig:
    """What to export, to which format, and where."""

    model: Path
    """Merged (or any Hugging Face) model folder to export."""
    out: Path
    """Output: a .gguf file, or a folder for ONNX (model.onnx, its weights file and the tokenizer)."""
    format: ExportFormat = "gguf"
    """gguf (llama.cpp, Ollama, LM Studio) or onnx (onnxruntime)."""
    gguf_dtype: GgufDtype = "f16"
    """GGUF weight type: f32 (exact), f16 (half the size), q8_0 (8-bit blocks, ~quarter size)."""
    force: bool = False
    """Replace an existing output."""

    def __post_init__(self) -> None:
        self.model, self.out = Path(self.model), Path(self.out)
        if self.format not in ("gguf", "onnx"):
            raise BadConfig(f"--format {self.format!r}: choose gguf or onnx.")
        if self.gguf_dtype not in GGUF_THRESHOLDS:
            raise BadConfig(f"--dtype {self.gguf_dtype!r}: choose f32, f16 or q8_0.")


@dataclass
class ExportResult:
    out: Path
    """The .gguf file, or the ONNX folder."""
    format: ExportFormat
    """gguf or onnx."""
    dtype: str
    """Weight type written: f32, f16 or q8_0 (ONNX: f32)."""
    size_bytes: int
    """Size on disk (for ONNX: every file in the folder)."""
    top1_agreement: float
    """Share of sample positions where the export and the source predict the same next token."""
    max_logit_diff: float
    """Largest absolute difference between exported and source logits."""
    min_logit_cosine: float
    """Smallest cosine similarity between exported and source logits over sample positions."""
    tokenizer_match: bool
    """The export's own tokenizer gives the source's token ids on every sample (GGUF; ONNX copies the tokenizer)."""
    positions: int
    """Sample positions compared."""
    seconds: float
    """Wall time of the export and its verification."""
    tensor_types: dict[str, int] = field(default_factory=dict)
    """GGUF: how many tensors of each type were written."""


def default_out(model: Path, fmt: ExportFormat, gguf_dtype: GgufDtype = "f16") -> Path:
    """`<model>-<dtype>.gguf` or `<model>-onnx/`, beside the model folder."""
    model = Path(model)
    return model.with_name(f"{model.name}-{gguf_dtype}.gguf" if fmt == "gguf" else f"{model.name}-onnx")


def run(cfg: ExportConfig) -> ExportResult:
    """Export `cfg.model`, verify the result against it, and keep it only if it passes.

    The source is loaded in float32 on CPU and freed before the GGUF is read back (also float32); the
    read-back dequantizes a second copy, so memory peaks near 2-3x the float32 model (5.5 GB at 0.5B).

    Raises:
        OutputExists: `cfg.out` exists and `cfg.force` is not set.
        ExportError: unsupported architecture, tokenizer or rope scaling, or a missing package.
        ExportVerificationFailed: the export does not reproduce the model (the file is removed).
    """
    refuse_overwrite(cfg.out, cfg.force)
    if cfg.format == "gguf" and cfg.out.is_dir():
        raise ExportError(f"{cfg.out} is a folder; GGUF export writes one file: pass --out NAME.gguf.")
    if not (cfg.model / "config.json").is_file():
        raise ExportError(f"{cfg.model}: not a model folder (no config.json). Export the folder `onboard merge` "
                          f"wrote (WORKSPACE/models/merged), or pass --model.")
    return _export_gguf(cfg) if cfg.format == "gguf" else _export_onnx(cfg)


# ---------------------------------------------------------------- shared: load, reference logits, compare


def _load_source(folder: Path):
    """Tokenizer and float32 CPU model: the reference every export is compared against."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, device_map={"": "cpu"})
    return tok, model.eval()


def _sample_texts(tok) -> list[str]:
    """Chat-rendered sample prompts (what the server sends) and one plain text."""
    texts = [SAMPLE_TEXT]
    if tok.chat_template:
        texts += [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                  for p in SAMPLE_PROMPTS]
    return texts


def _compare(ref: list, got: list, what: str, bar: tuple[float, float]) -> dict:
    """Top-1 agreement, max |diff| and min cosine of two lists of [seq, vocab] logits; raise below the bar."""
    import torch

    agree = torch.cat([(a.argmax(-1) == b.argmax(-1)).float() for a, b in zip(ref, got, strict=True)]).mean().item()
    diff = max((a - b).abs().max().item() for a, b in zip(ref, got, strict=True))
    cos = min(torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item() for a, b in zip(ref, got, strict=True))
    log.info("%s check: top-1 %.4f, min cosine %.6f, max logit diff %.3g", what, agree, cos, diff)
    min_agree, min_cos = bar
    if agree < min_agree or cos < min_cos:
        raise ExportVerificationFailed(
            f"{what} verification failed: the export agrees with the source model on {agree:.1%} of next tokens "
            f"(needs {min_agree:.0%}), min logit cosine {cos:.5f} (needs {min_cos}), max logit difference "
            f"{diff:.3g}; nothing was kept. Try a wider type (--dtype f16 or f32), and report it with "
            f"ONBOARD_DEBUG=1 if f32 fails too.")
    return {"top1_agreement": agree, "max_logit_diff": diff, "min_logit_cosine": cos,
            "positions": sum(a.shape[0] for a in ref)}


def _provenance(cfg: ExportConfig, dtype: str, checks: dict) -> dict:
    return {"kind": f"onboard-export-{cfg.format}", "source_model": model_info(str(cfg.model)), "dtype": dtype,
            "verification": {**checks, "prompts": SAMPLE_PROMPTS, "text": SAMPLE_TEXT},
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# ---------------------------------------------------------------- GGUF


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


def _export_gguf(cfg: ExportConfig) -> ExportResult:
    import gc

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    folder = cfg.model
    _gguf_arch(AutoConfig.from_pretrained(str(folder)))  # refuse what cannot be written before loading weights
    _pre_tokenizer(folder)
    tok, model = _load_source(folder)
    texts = _sample_texts(tok)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    with torch.no_grad():
        ref = [model(torch.tensor([i])).logits[0] for i in ids]

    out = cfg.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial.gguf")  # same folder: the final rename is atomic
    tmp.unlink(missing_ok=True)
    try:
        counts = write_gguf(model, tok, folder, tmp, cfg.gguf_dtype)
        del model
        gc.collect()
        log.info("wrote %s (%s); reading it back with transformers", tmp, counts)
        back_tok = AutoTokenizer.from_pretrained(str(tmp.parent), gguf_file=tmp.name)
        back = AutoModelForCausalLM.from_pretrained(str(tmp.parent), gguf_file=tmp.name, dtype=torch.float32,
                                                    device_map={"": "cpu"}).eval()
        tok_match = all(back_tok(t, add_special_tokens=False)["input_ids"] == tok(t, add_special_tokens=False)["input_ids"]
                        for t in [*texts, PRE_TOKENIZER_PROBE])
        if not tok_match:
            raise ExportVerificationFailed(
                f"the GGUF's tokenizer splits text differently from {folder}'s tokenizer (sample prompts and llama.cpp's "
                f"pre-tokenizer probe), so llama.cpp would feed the model other tokens; nothing was kept. Please report "
                f"the model's tokenizer.json pre_tokenizer with ONBOARD_DEBUG=1.")
        with torch.no_grad():
            got = [back(torch.tensor([i])).logits[0] for i in ids]
        checks = _compare(ref, got, f"GGUF {cfg.gguf_dtype}", GGUF_THRESHOLDS[cfg.gguf_dtype])
        del back
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    info = _provenance(cfg, cfg.gguf_dtype, {**checks, "tokenizer_match": tok_match, "tensor_types": counts})
    out.with_name(out.name + ".json").write_text(json.dumps(info, indent=2, ensure_ascii=False))
    return ExportResult(out, "gguf", cfg.gguf_dtype, out.stat().st_size, checks["top1_agreement"],
                        checks["max_logit_diff"], checks["min_logit_cosine"], tok_match, checks["positions"],
                        round(time.perf_counter() - t0, 1), counts)


# ---------------------------------------------------------------- ONNX


def _onnx_packages() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: pip install 'onboard[onnx]' (onnx, onnxscript, "
                          f"onnxruntime). Optimum is not used: optimum-onnx requires transformers<4.58 and this "
                          f"project runs transformers 5.")


def _onnx_write(module, example, dims, folder: Path, source: Path) -> None:
    import torch

    try:
        torch.onnx.export(module, (example,), str(folder / "model.onnx"), input_names=["input_ids"],
                          output_names=["logits"], dynamic_shapes=(dims,), dynamo=True, verbose=False)
    except Exception as e:  # the exporter raises many types; its message is what helps
        raise ExportError(f"torch.onnx.export failed for {source} ({type(e).__name__}: {e}). "
                          f"Try --format gguf, or report it with ONBOARD_DEBUG=1.") from e


def _onnx_logits(path: Path, ids: list[list[int]]) -> list:
    """Logits from onnxruntime (CPU) for each token id list, one sequence per call."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(session.run(["logits"], {"input_ids": np.array([i], dtype=np.int64)})[0][0]) for i in ids]


def _export_onnx(cfg: ExportConfig) -> ExportResult:
    import torch

    _onnx_packages()
    t0 = time.perf_counter()
    folder = cfg.model
    tok, model = _load_source(folder)
    texts = _sample_texts(tok)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    with torch.no_grad():
        ref = [model(torch.tensor([i])).logits[0] for i in ids]

    class Logits(torch.nn.Module):
        """The plain forward pass: token ids in, logits out (no cache, no mask: one unpadded sequence per row)."""

        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, input_ids):
            return self.lm(input_ids=input_ids, use_cache=False).logits

    # batch 2, length >= 2: a size-1 example would be baked into the graph as a constant
    example = torch.tensor([ids[0][:8], ids[0][:8]]) if len(ids[0]) >= 2 else torch.zeros(2, 4, dtype=torch.long)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    try:
        with publish_dir(cfg.out) as tmp:
            _onnx_write(Logits(model).eval(), example, dims, tmp, folder)
            got = _onnx_logits(tmp / "model.onnx", ids)
            checks = _compare(ref, got, "ONNX", ONNX_THRESHOLD)
            tok.save_pretrained(tmp)
            model.config.save_pretrained(tmp)
            info = _provenance(cfg, "f32", {**checks, "inputs": "input_ids int64 [batch, sequence]",
                                            "outputs": "logits float32 [batch, sequence, vocab]"})
            (tmp / EXPORT_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False))
    except BaseException:
        shutil.rmtree(cfg.out.with_name(cfg.out.name + ".tmp"), ignore_errors=True)  # publish_dir's scratch folder
        raise
    size = sum(p.stat().st_size for p in cfg.out.rglob("*") if p.is_file())
    return ExportResult(cfg.out, "onnx", "f32", size, checks["top1_agreement"], checks["max_logit_diff"],
                        checks["min_logit_cosine"], True, checks["positions"], round(time.perf_counter() - t0, 1))

