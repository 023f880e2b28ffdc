"""Turn a GGUF file into an ordinary Hugging Face model folder, once, so every stage loads one format.

Transformers reads GGUF (`from_pretrained(..., gguf_file=...)`) by dequantizing every tensor, which
takes a while and marks the model as GGUF-quantized: `save_pretrained` then refuses it, and PEFT and
bitsandbytes would see a quantized model that is not one. So the dequantized weights are moved into
a plain model rebuilt from the same config (quantization marker dropped) and saved with the
tokenizer; training, merging and serving then load that folder like any other.

Qwen2.5, Llama 3 and Mistral get their end-of-turn tokens added to `generation_config.eos_token_id`
(GGUF records one EOS; an instruct model must also stop at `<|im_end|>` / `<|eot_id|>`), and a pad
token that is not the end-of-turn token where the vocabulary has one (Qwen's `<|endoftext|>`).
llama.cpp writes Mistral as architecture `llama`, and transformers loads it as a Llama model: the
same network for Mistral 7B v0.2+ (no sliding window).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rag.errors import BadContract
from rag.io import publish_dir
from rag.model_card import CARD_FILE, ModelCard
from training.cache import content_hash, models_cache, sha256_file
from training.errors import FetchError

log = logging.getLogger(__name__)


# Tokens that end an assistant turn or a document, per family; only those in the vocabulary are used.
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "</s>")
# Padding candidates, best first (Qwen, Llama 3.1, Llama 3.0, Mistral...): never the end-of-turn token
# when another exists, because padding is masked out of the loss and the model must still learn to
# emit the stop token.
PAD_TOKENS = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<|end_of_text|>", "<pad>", "<|pad|>", "<unk>")


def is_converted(folder: Path) -> bool:
    """Whether `folder` is a finished conversion (published folders are complete by construction) whose
    model card this version reads; one made by an older Onboard is converted again, not refused later."""
    if not ((folder / "config.json").is_file() and (folder / CARD_FILE).is_file()):
        return False
    try:
        return ModelCard.read(folder).kind == "gguf-conversion"
    except BadContract as e:
        log.warning("%s: converting again (%s)", folder, e)
        return False


def cached_folder(gguf_path: Path) -> Path:
    """The folder a GGUF file converts to, keyed by its content: `<models_cache>/gguf-<sha256[:16]>`."""
    return models_cache() / f"gguf-{content_hash(gguf_path)[:16]}"


def convert_cached(gguf_path: str | Path) -> Path:
    """Convert `gguf_path` into its cache folder unless that is already done; return the folder."""
    gguf_path = Path(gguf_path).expanduser()
    out = cached_folder(gguf_path)
    if is_converted(out):
        log.info("%s: reusing its conversion in %s", gguf_path, out)
        return out
    return convert_gguf(gguf_path, out, sha256=content_hash(gguf_path))


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, dtype: Any = "float32", sha256: str | None = None,
                 extra: dict | None = None) -> Path:
    """Dequantize a GGUF file into a plain Hugging Face folder at `out_dir` (replaced atomically).

    Args:
        dtype: torch dtype (or its name) of the saved weights; float32 is fastest on CPU.
        sha256: the file's hash if the caller already knows it (else computed), for provenance.
        extra: more facts for the model card's provenance.

    Returns:
        `out_dir`, holding config.json, the weights, the tokenizer (with its chat template), a
        generation_config that stops at the family's end-of-turn tokens, and the model card
        (`rag.model_card.ModelCard`, kind gguf-conversion).

    Raises:
        FetchError: the file is missing, not GGUF, or of an architecture transformers cannot read.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path).expanduser().resolve(), Path(out_dir).expanduser()
    if not gguf_path.is_file():
        raise FetchError(f"{gguf_path}: no such GGUF file.")
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    meta = gguf_metadata(gguf_path)
    t0 = time.perf_counter()
    log.info("dequantizing %s (%s) to %s", gguf_path, meta["architecture"], dtype)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        log.info("tokenizer read in %.1f s", time.perf_counter() - t0)
        gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                          dtype=dtype, device_map={"": "cpu"})
        log.info("weights dequantized in %.1f s", time.perf_counter() - t0)
    except (ValueError, OSError, KeyError) as e:
        raise FetchError(f"{gguf_path}: transformers cannot read this GGUF ({e}). Supported families include "
                         f"qwen2, llama and mistral; or pass a Hugging Face model folder instead.") from e
    model = _plain_copy(gguf_model, dtype)
    del gguf_model
    _set_stop_and_pad(model, tok)

    provenance = {
        "source_gguf": str(gguf_path),
        "sha256": sha256 or sha256_file(gguf_path),
        "architecture": model.config.model_type,
        "gguf_architecture": meta["architecture"],
        "gguf_tensor_types": meta["tensor_types"],
        "dtype": str(dtype).removeprefix("torch."),
        "chat_template": tok.chat_template is not None,
        "pad_token": tok.pad_token,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": 0.0,
        **(extra or {}),
    }
    with publish_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        provenance["seconds"] = round(time.perf_counter() - t0, 1)
        ModelCard(kind="gguf-conversion",
                  description=f"{meta['name'] or gguf_path.stem}, dequantized from GGUF by Onboard.",
                  parameters=sum(p.numel() for p in model.parameters()),
                  eos_token_ids=list(model.generation_config.eos_token_id),  # a list: _set_stop_and_pad
                  provenance=provenance).write(tmp)
    log.info("converted %s into %s in %.0f s", gguf_path, out_dir, provenance["seconds"])
    return out_dir


def gguf_metadata(path: Path) -> dict:
    """Architecture, model name and a count of tensor storage types, read from the GGUF header only."""
    try:
        from gguf import GGUFReader
    except ImportError as e:
        raise FetchError("reading GGUF files needs the `gguf` package: pip install gguf") from e
    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as e:
        raise FetchError(f"{path}: not a readable GGUF file ({e}).") from e

    def field(key: str) -> str | None:
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    types: dict[str, int] = {}
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return {"architecture": field("general.architecture"), "name": field("general.name"), "tensor_types": types}


def _plain_copy(gguf_model, dtype):
    """The same network as a model transformers does not consider quantized, so it can be saved and trained.

    Rebuilt from the config with the quantization marker dropped, and given the dequantized tensors
    themselves (no copy; `from_pretrained` with a state dict also skips the random init, ~10 s at 0.5B).
    """
    config = gguf_model.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.name_or_path = ""
    state = gguf_model.state_dict()
    model = type(gguf_model).from_pretrained(None, config=config, state_dict=state, dtype=dtype)
    loaded = model.state_dict()
    wrong = [k for k in state if k not in loaded or not loaded[k].equal(state[k])]
    if wrong or set(loaded) - set(state):
        raise FetchError(f"the dequantized GGUF does not fit its own config (e.g. {(wrong or sorted(set(loaded) - set(state)))[:3]}); "
                         f"please report the file's architecture, or convert it with llama.cpp's tools instead.")
    model.generation_config = gguf_model.generation_config
    return model.eval()


def _set_stop_and_pad(model, tok) -> None:
    """End-of-turn tokens stop generation; padding uses a dedicated token where the family has one.

    Only ids the embedding has count: transformers' GGUF byte-level tokenizer adds GPT-2's
    `<|endoftext|>` to vocabularies that lack it (Llama 3), past the end of the model's embedding.
    """
    n_embed = model.get_input_embeddings().num_embeddings
    vocab = {t: i for t, i in tok.get_vocab().items() if i < n_embed}
    special = set(tok.all_special_tokens) | set(tok.added_tokens_encoder)
    eos = model.generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    eos += [tok.eos_token_id] if tok.eos_token_id is not None else []
    eos += [vocab[t] for t in STOP_TOKENS if t in vocab and t in special]
    eos = list(dict.fromkeys(i for i in eos if i < n_embed))
    if tok.pad_token is None or tok.pad_token_id >= n_embed:
        pad = next((t for t in PAD_TOKENS if t in vocab and vocab[t] != tok.eos_token_id), tok.eos_token)
        log.info("tokenizer has no usable pad token; using %r", pad)
        tok.pad_token = pad
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.pad_token_id = tok.pad_token_id
    if tok.chat_template is None:
        log.warning("the GGUF carries no chat template; training and serving need one (a base, not instruct, model?)")
