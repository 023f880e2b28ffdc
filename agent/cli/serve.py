"""`onboard serve` and `onboard demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_WS, VerboseOpt, WorkspaceOpt
from agent.ui import handle_errors, setup
from rag.workspace import Workspace


@handle_errors
def serve(
    workspace: WorkspaceOpt = DEFAULT_WS,
    model: Annotated[Path | None, typer.Option(help="Model folder [default: WORKSPACE/models/merged].")] = None,
    host: Annotated[str, typer.Option(envvar="ONBOARD_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="ONBOARD_PORT")] = 8000,
    rag_k: Annotated[int | None, typer.Option(help="Chunks retrieved per request (0: no RAG) [default: as many "
                                                   "as the model's training prompts held].")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    force: Annotated[bool, typer.Option("--force", help="Serve a model whose last `onboard eval` failed its "
                                                        "gate.")] = False,
    verbose: VerboseOpt = False,
):
    """Serve the model with RAG through an OpenAI-compatible API (/v1/chat/completions). Other settings
    (engine, remote upstream, limits) come from ONBOARD_* environment variables (serving/settings.py)."""
    setup(verbose)
    from agent import pipeline

    ws = Workspace(workspace)
    pipeline.serve(ws, model=model, force=force, host=host, port=port, rag_k=rag_k, max_new_tokens=max_new_tokens)


@handle_errors
def demo(
    workspace: WorkspaceOpt = Path(".onboard-demo"),
    docs: Annotated[Path | None, typer.Option(help="Documents [default: the bundled example shop].")] = None,
    base: Annotated[str | None, typer.Option(help="A real base model (folder, Hub id or .gguf), e.g. the folder "
                                                  "`onboard base fetch qwen2.5-coder-0.5b-instruct` prints; "
                                                  "default: build the tiny one.")] = None,
    verbose: VerboseOpt = False,
):
    """Run the whole pipeline on the example shop: build base, ingest, data, train, merge, serve, ask."""
    setup(verbose)
    from agent.demo import DemoConfig, run

    run(DemoConfig(workspace=workspace, docs=docs, base=base))
