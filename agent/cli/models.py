"""`onboard merge` and `onboard export`: the trained model as a standalone folder or file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_WS, VerboseOpt, WorkspaceOpt
from agent.ui import console, handle_errors, setup
from rag.workspace import Workspace


@handle_errors
def merge(
    workspace: WorkspaceOpt = DEFAULT_WS,
    run_dir: Annotated[Path | None, typer.Option("--run", help="Run folder [default: WORKSPACE/runs/sft].")] = None,
    out: Annotated[Path | None, typer.Option(help="Merged model folder [default: WORKSPACE/models/merged].")] = None,
    base: Annotated[str | None, typer.Option(help="Base model [default: the one the run used].")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing merged model; merge a run that did not "
                                             "finish (stopped, or killed).")] = False,
    verbose: VerboseOpt = False,
):
    """Merge the adapter into the full-precision base and save a standalone model (verified)."""
    setup(verbose)
    from agent import pipeline

    r = pipeline.merge(Workspace(workspace), run=run_dir, out=out, base=base, force=force)
    console.print(f"merged into {r.out}: top-1 agreement with adapter+base {r.top1_agreement:.1%}, "
                  f"max logit difference {r.max_logit_diff:.2e}")


@handle_errors
def export(
    fmt: Annotated[str, typer.Option("--format", help="gguf (llama.cpp, Ollama, LM Studio) or onnx (onnxruntime).")],
    workspace: WorkspaceOpt = DEFAULT_WS,
    model: Annotated[Path | None, typer.Option(help="Model folder [default: WORKSPACE/models/merged].")] = None,
    dtype: Annotated[str | None, typer.Option(help="GGUF weights: f32, f16 or q8_0 [default: f16]; "
                                                   "ONNX is always f32.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output .gguf file or ONNX folder [default: beside the model, "
                                                  "e.g. models/merged-f16.gguf, models/merged-onnx].")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing export.")] = False,
    verbose: VerboseOpt = False,
):
    """Export the merged model to GGUF or ONNX, verified against it (token ids and next-token logits)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # before setup() imports tqdm: the GGUF read-back draws its own bar
    setup(verbose)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notes
    from agent import pipeline

    r = pipeline.export(model or Workspace(workspace).merged_model, fmt, dtype=dtype, out=out, force=force)
    console.print(f"exported {r.out} ({r.format} {r.dtype}, {r.size_bytes / 2**20:.1f} MiB, {r.seconds} s)", soft_wrap=True)
    console.print(f"verified on {r.positions} positions: top-1 agreement {r.top1_agreement:.1%}, min logit cosine "
                  f"{r.min_logit_cosine:.6f}, max logit difference {r.max_logit_diff:.2e}, "
                  + ("tokenizer identical" if r.format == "gguf" else "tokenizer files copied"))
