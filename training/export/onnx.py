"""Write a model as an ONNX graph (with its tokenizer), and keep it only if onnxruntime reproduces it.

ONNX uses `torch.onnx.export` (the dynamo exporter: needs `onnx` and `onnxscript`, the `onnx` extra)
on the plain forward pass, `input_ids [batch, seq] -> logits [batch, seq, vocab]`, float32, without
KV cache or attention mask, and is checked with onnxruntime. Optimum is not used: its ONNX exporter
(`optimum-onnx`) requires transformers < 4.58, and older `optimum` releases fail to import with
transformers 5.

The folder is built under a temporary name (`rag.io.publish_dir`) and renamed into place only once
the check passes; on failure the temporary folder is removed.
"""

from __future__ import annotations

from pathlib import Path

from rag.io import atomic_write_json, publish_dir
from training.compare import LogitAgreement
from training.errors import ExportError
from training.export.verify import Source, check, provenance

EXPORT_FILE = "onboard_export.json"
ONNX_THRESHOLD = (0.99, 0.9999)
"""(least top-1 agreement, least logit cosine): float32 throughout, so only the kernels differ."""


def refuse_unsupported() -> None:
    """Raise ExportError naming the extra when the ONNX packages are missing (before loading anything)."""
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


def export(source: Source, out: Path) -> LogitAgreement:
    """Write `source` to the folder `out` (model.onnx, its weights, the tokenizer, the config and
    EXPORT_FILE), verified with onnxruntime; publish the folder only if it passes.

    Raises:
        ExportError: torch.onnx.export failed.
        ExportVerificationFailed: onnxruntime's logits differ from the source's (nothing is kept).
    """
    import torch

    class Logits(torch.nn.Module):
        """The plain forward pass: token ids in, logits out (no cache, no mask: one unpadded sequence per row)."""

        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, input_ids):
            return self.lm(input_ids=input_ids, use_cache=False).logits

    ids, model = source.ids, source.model
    # batch 2, length >= 2: a size-1 example would be baked into the graph as a constant
    example = torch.tensor([ids[0][:8], ids[0][:8]]) if len(ids[0]) >= 2 else torch.zeros(2, 4, dtype=torch.long)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    with publish_dir(out) as tmp:
        _onnx_write(Logits(model).eval(), example, dims, tmp, source.folder)
        checks = check(source, _onnx_logits(tmp / "model.onnx", ids), "ONNX", ONNX_THRESHOLD)
        source.tok.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        atomic_write_json(tmp / EXPORT_FILE, provenance(source.folder, "onnx", "f32", {
            **checks.as_dict(), "inputs": "input_ids int64 [batch, sequence]",
            "outputs": "logits float32 [batch, sequence, vocab]"}))
    return checks
