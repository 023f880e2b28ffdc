"""`onboard run plan.yaml`: carry out a plan written by `onboard chat` (or by hand) without chatting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_WS, VerboseOpt, WorkspaceOpt
from agent.ui import console, handle_errors, setup, stage_bars
from rag.workspace import Workspace


@handle_errors
def run(
    plan_file: Annotated[Path, typer.Argument(help="The plan (YAML), e.g. WORKSPACE/plan.yaml.", metavar="PLAN")],
    workspace: WorkspaceOpt = DEFAULT_WS,
    serve: Annotated[bool, typer.Option(help="Serve the model at the end when the plan says deploy: local "
                                             "(until Ctrl-C).")] = False,
    eval_limit: Annotated[int | None, typer.Option(help="Evaluate on the first N held-out questions only (quicker; "
                                                        "wider intervals).")] = None,
    verbose: VerboseOpt = False,
):
    """Replay a plan: base model, ingest, dataset, time estimate, training, merge, evaluation (and serving)."""
    setup(verbose)
    from agent import pipeline, runner
    from agent.interview.plan import load

    plan = load(plan_file)
    ws = Workspace(workspace)
    say = lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    with stage_bars() as update:
        result = runner.run(plan, ws, runner.Hooks(say=say, progress=update), eval_limit=eval_limit)
    say(f"model: {result.model}")
    if plan.deploy == "local":
        if serve:
            pipeline.serve(ws)
        else:
            say(f"serve it with: onboard serve -w {ws.root}")
    elif plan.deploy != "none":
        say(f"the plan says deploy: {plan.deploy}, which `onboard run` cannot do yet (`onboard deploy` is not built): "
            f"serve it on this machine with `onboard serve -w {ws.root}`")
