"""One loader for every base model: a local Hugging Face folder, a Hub id, or a GGUF file.

A `.gguf` file is dequantized once into a cached Hugging Face folder (training/gguf.py) and every
stage (train, merge, serve) then loads that folder, so there is one loading path for all three.

Quantized loading (QLoRA's 4-bit NF4, or 8-bit) goes through bitsandbytes, which runs on CPU as
well as CUDA. On CPU the compute dtype is float32: bf16 matmuls are ~18x slower on this class of
machine.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

from rag.io import atomic_write_json
from training.cache import models_cache, sha256_file
from training.errors import ModelNotFound

log = logging.getLogger(__name__)

Quantization = Literal["4bit", "8bit", "none"]


def resolve(name_or_path: str | Path) -> str:
    """Return a local folder path, or the Hub id unchanged when no such folder exists.

    A `.gguf` file is converted on first use into `$ONBOARD_CACHE/gguf-<sha256[:16]>` (default
    `~/.cache/onboard/models/...`) and that folder is returned; later calls reuse it.

    Raises:
        ModelNotFound: it looks like a path and no model is there, or it is a Hub id that is not in
            the local Hugging Face cache while HF_HUB_OFFLINE=1.
    """
    p = Path(name_or_path).expanduser()
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise ModelNotFound(f"{p}: no such GGUF file. For a known model, `onboard base fetch NAME` downloads one.")
        from training.gguf import convert_cached

        return str(convert_cached(p))
    if p.is_dir():
        if not (p / "config.json").exists():
            raise ModelNotFound(f"{p}: not a model folder (no config.json). Pass a Hugging Face model folder.")
        return str(p)
    looks_like_path = str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") > 1
    if looks_like_path:
        raise ModelNotFound(f"{name_or_path}: no model folder there. {_WHAT_TO_PASS}")
    if hub_snapshot(str(name_or_path)) is None and _hub_offline():
        raise ModelNotFound(
            f"{name_or_path}: not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it. "
            f"With internet, run again with HF_HUB_OFFLINE=0 (it is downloaded once, then cached). {_WHAT_TO_PASS}")
    return str(name_or_path)


_WHAT_TO_PASS = ("Build the default with `onboard base build tiny --docs DOCS --out DIR`, fetch a small real one with "
                 "`onboard base fetch qwen2.5-coder-0.5b-instruct`, or pass a local model folder or .gguf file.")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a Hub model (its `main` revision), or None when it is not cached."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return None
    return Path(config).parent if isinstance(config, str) else None


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weights_sha256(folder: Path) -> str | None:
    """One sha256 over a model folder's weight files (each file's name and content sha256, in name
    order), or None when it has none. Each file's hash is remembered in
    `<models cache>/file-sha256.json` per (path, size, mtime), so a large model is read once (with a
    progress bar from 1 GiB)."""
    import hashlib

    from tqdm.auto import tqdm

    files = sorted(f for f in Path(folder).iterdir() if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    if not files:
        return None
    memo_file = models_cache() / "file-sha256.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    stats = {f: f.stat() for f in files}
    keys = {f: f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}" for f, st in stats.items()}
    todo = [f for f in files if keys[f] not in memo]
    size = sum(stats[f].st_size for f in todo)
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"fingerprinting {folder}", disable=size < 2**30) as bar:
        for f in todo:
            memo[keys[f]] = sha256_file(f, bar.update)
    total = hashlib.sha256()
    for f in files:
        total.update(f"{f.name}\0{memo[keys[f]]}\n".encode())
    if todo:
        try:
            atomic_write_json(memo_file, memo, indent=0)
        except OSError as e:  # a read-only cache costs a re-hash next time, nothing more
            log.warning("could not remember weight hashes in %s: %s", memo_file, e)
    return total.hexdigest()


def lora_target_modules(model) -> list[str]:
    """Names (last component, e.g. "q_proj") of every linear layer except the output head, found by inspection.

    The same set PEFT's `target_modules="all-linear"` picks (what training/sft.py passes); this
    helper is for showing or pinning that list, e.g. in a recipe or a run's provenance. Works on
    4-bit models too (bitsandbytes' Linear4bit subclasses nn.Linear).
    """
    from torch import nn

    head = model.get_output_embeddings()
    names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head}
    return sorted(names)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def load_tokenizer(name_or_path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(name_or_path))
    if tok.pad_token is None:
        log.warning("tokenizer has no pad token; using EOS %r for padding", tok.eos_token)
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        log.warning("tokenizer has no chat template; training and serving need one")
    return tok


def quantization_config(quantization: Quantization):
    """bitsandbytes config for QLoRA: NF4 with double quantization."""
    if quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if cuda_available() else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_quant_storage=compute,
    )


def load_model(name_or_path: str | Path, quantization: Quantization = "none", dtype=None, training: bool = False):
    """Load a causal LM for training or inference.

    Args:
        quantization: "4bit" (NF4, QLoRA), "8bit", or "none" (full precision).
        dtype: torch dtype of unquantized weights; default float32 on CPU, bfloat16 on CUDA.
        training: the model will be trained (see `_keep_4bit_trainable`).
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve(name_or_path)
    import os

    # each process of a distributed run (`--num-processes`) takes its own GPU
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda_available() else "cpu"
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    log.info("loading %s (%s, %s) on %s", path, quantization, dtype, device)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        quantization_config=quantization_config(quantization),
        device_map={"": device},
    )
    if training and quantization == "4bit":
        _keep_4bit_trainable(model)
    return model


def _keep_4bit_trainable(model) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference during training.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 converts a Linear4bit's weight to an inference-only
    layout on the first forward pass in eval mode without grad (an eval step mid-training), and
    keeps it: later training steps then run `gemv_4bit`, which has no autograd kernel, so gradients
    through the frozen base layers are silently dropped and early LoRA layers stop learning.
    """
    import bitsandbytes as bnb

    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False
