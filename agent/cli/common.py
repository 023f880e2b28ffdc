"""Options several verbs share (each reads its environment variable too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rag.workspace import DEFAULT_WORKSPACE

DEFAULT_WS = DEFAULT_WORKSPACE
WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", envvar="ONBOARD_WORKSPACE",
                                            help="Workspace folder for the index, datasets, runs and models.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO level).")]
CollectionOpt = Annotated[str | None, typer.Option(help="Chroma collection name [default: onboard, or the one ingested].")]
ChromaOpt = Annotated[str | None, typer.Option("--chroma-url", envvar="ONBOARD_CHROMA_URL",
                                               help="A `chroma run` server instead of the embedded store.")]
BaseOpt = Annotated[str | None, typer.Option("--base", help="Target model (folder or Hub id): its tokenizer counts "
                                                            "tokens [default: WORKSPACE/base/tiny when built].")]
