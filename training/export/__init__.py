"""Export a merged model for other runtimes: a llama.cpp GGUF file, or an ONNX graph.

    onboard export --format gguf --dtype q8_0        # .onboard/models/merged-q8_0.gguf
    onboard export --format onnx                     # .onboard/models/merged-onnx/model.onnx

Every export goes the same way: refuse what the format cannot hold from the config and tokenizer
files alone, load the source model once (`verify.load_source`: float32, CPU, with its reference
logits on sample prompts), write the format from that model, read the result back, compare it with
the reference (`verify.check`), and keep it only if it passes. The formats:

- `gguf.py`: llama.cpp's layout for the llama and qwen2 architectures, read back with transformers.
- `onnx.py`: `torch.onnx.export` of the plain forward pass, read back with onnxruntime.
- `verify.py`: the source, the sample inputs and the bar, shared by both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rag.io import atomic_write_json
from training.errors import BadConfig, ExportError, ExportVerificationFailed
from training.export import gguf, onnx, verify
from training.export.gguf import GGUF_THRESHOLDS, GgufDtype
from training.io import refuse_overwrite

__all__ = ["ExportConfig", "ExportError", "ExportFormat", "ExportResult", "ExportVerificationFailed", "GgufDtype",
           "default_out", "run"]

ExportFormat = Literal["gguf", "onnx"]


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

    The source is loaded once, in float32 on CPU; a GGUF export frees it before reading the file back
    (also float32, dequantizing a second copy), so memory peaks near 2-3x the float32 model (5.5 GB at 0.5B).

    Raises:
        OutputExists: `cfg.out` exists and `cfg.force` is not set.
        ExportError: unsupported architecture, tokenizer or rope scaling, or a missing package.
        ExportVerificationFailed: the export does not reproduce the model (nothing is kept).
    """
    refuse_overwrite(cfg.out, cfg.force)
    if cfg.format == "gguf" and cfg.out.is_dir():
        raise ExportError(f"{cfg.out} is a folder; GGUF export writes one file: pass --out NAME.gguf.")
    if not (cfg.model / "config.json").is_file():
        raise ExportError(f"{cfg.model}: not a model folder (no config.json). Export the folder `onboard merge` "
                          f"wrote (WORKSPACE/models/merged), or pass --model.")
    t0 = time.perf_counter()
    if cfg.format == "gguf":
        gguf.refuse_unsupported(cfg.model)
    else:
        onnx.refuse_unsupported()
    source = verify.load_source(cfg.model)
    return _gguf(cfg, source, t0) if cfg.format == "gguf" else _onnx(cfg, source, t0)


def _gguf(cfg: ExportConfig, source: verify.Source, t0: float) -> ExportResult:
    r = gguf.export(source, cfg.out, cfg.gguf_dtype)
    checks = r.checks.as_dict()
    atomic_write_json(cfg.out.with_name(cfg.out.name + ".json"), verify.provenance(
        cfg.model, "gguf", cfg.gguf_dtype, {**checks, "tokenizer_match": r.tokenizer_match,
                                            "tensor_types": r.tensor_types}))
    return ExportResult(cfg.out, "gguf", cfg.gguf_dtype, cfg.out.stat().st_size, r.checks.top1_agreement,
                        r.checks.max_logit_diff, r.checks.min_logit_cosine, r.tokenizer_match, r.checks.positions,
                        round(time.perf_counter() - t0, 1), r.tensor_types)


def _onnx(cfg: ExportConfig, source: verify.Source, t0: float) -> ExportResult:
    checks = onnx.export(source, cfg.out)
    size = sum(p.stat().st_size for p in cfg.out.rglob("*") if p.is_file())
    return ExportResult(cfg.out, "onnx", "f32", size, checks.top1_agreement, checks.max_logit_diff,
                        checks.min_logit_cosine, True, checks.positions, round(time.perf_counter() - t0, 1))
