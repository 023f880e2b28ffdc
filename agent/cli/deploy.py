"""`onboard deploy`: compose and Kubernetes files that serve the model with vLLM behind the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_WS, VerboseOpt, WorkspaceOpt
from agent.deploy.spec import DeployConfig as D  # the defaults are declared once, there
from agent.ui import handle_errors, setup


@handle_errors
def deploy(
    model: Annotated[Path, typer.Option(help="A merged model folder, or a LoRA adapter folder (served on --base).")],
    out: Annotated[Path, typer.Option(help="Where to write Dockerfile, compose.yaml, k8s/ and README.md.")],
    workspace: WorkspaceOpt = DEFAULT_WS,
    base: Annotated[Path | None, typer.Option(help="With an adapter: its base model's folder [default: the one "
                                                   "the adapter names].")] = None,
    name: Annotated[str | None, typer.Option(help="The model's name in the API [default: the folder's name].")] = None,
    port: Annotated[int, typer.Option(help="The gateway's port.")] = D.port,
    image: Annotated[str, typer.Option(help="The gateway image's name (push it to your registry for "
                                            "Kubernetes).")] = D.image,
    vllm_image: Annotated[str, typer.Option(help="The vLLM image.")] = D.vllm_image,
    gpu_memory_utilization: Annotated[float, typer.Option(min=0.05, max=1.0)] = D.gpu_memory_utilization,
    max_model_len: Annotated[int | None, typer.Option(min=1, help="[default: the model's max_position_embeddings]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write over deploy files already in --out.")] = False,
    ignore_gate: Annotated[bool, typer.Option("--ignore-gate", help="Deploy a model whose last `onboard eval` "
                                                                    "failed its gate.")] = False,
    verbose: VerboseOpt = False,
):
    """Write the files that serve MODEL with vLLM (GPU) behind the Onboard gateway and the workspace's index:
    a Dockerfile built from this project, compose.yaml, and Kubernetes manifests."""
    setup(verbose)
    from agent.deploy import run

    d = run(D(workspace=workspace, model=model, out=out, base=base, name=name, port=port, image=image,
                         vllm_image=vllm_image, gpu_memory_utilization=gpu_memory_utilization,
                         max_model_len=max_model_len, force=force, ignore_gate=ignore_gate))
    typer.echo(f"wrote {len(d.files)} files to {d.out} ({'merged model' if d.mode == 'merged' else 'base + LoRA'} "
               f"served as {d.served_name!r}, {d.rag_k if d.rag_k is not None else 'default'} chunks per question)")
    for note in d.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"next: docker compose -f {d.out / 'compose.yaml'} up --build -d   (see {d.out / 'README.md'})")
