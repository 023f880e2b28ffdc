"""`onboard train`: CPT, SFT or DPO with LoRA, QLoRA, DoRA, prefix tuning or a full fine-tune; from a
recipe file or flags; on one process or several (`--num-processes`).

Its options are not declared here: `train_options()` derives one per `training.config.TrainConfig`
field (flag, type and help text from the field), so the CLI, the recipe schema and the config cannot
drift apart. Only what is not a run setting (workspace, recipe, process count) is declared below.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

import typer

from agent.cli.common import DEFAULT_WS, VerboseOpt, WorkspaceOpt
from agent.ui import console, progress_bar, setup
from training.config import TrainConfig, expected, field_meta, flag_of

SHELL_OPTIONS: dict[str, tuple] = {
    "workspace": (WorkspaceOpt, DEFAULT_WS),
    "recipe": (Annotated[Path | None, typer.Option(help="A recipe YAML (training/recipes/...); flags you pass "
                                                        "override it.")], None),
    "num_processes": (Annotated[int, typer.Option(help="Processes (GPUs) to train on (torch's elastic launcher; "
                                                       "`accelerate launch` with --accelerate-config).")], 1),
    "accelerate_config": (Annotated[Path | None, typer.Option(help="accelerate config (deploy/accelerate/*.yaml).")],
                          None),
    "verbose": (VerboseOpt, False),
}


def _cli_type(annotation) -> type:
    """The type typer parses a field as: Literal choices and lists arrive as text and TrainConfig checks them."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) in (Literal, list) or annotation is str:
        return str
    return annotation


def train_options() -> dict[str, inspect.Parameter]:
    """One typer option per TrainConfig field that has a flag, each defaulting to None (= not given)."""
    params = {}
    for name, f in TrainConfig.model_fields.items():
        meta = field_meta(name)
        if meta["flag"] == "":  # recipe-only (e.g. target_modules)
            continue
        if meta["workspace"]:
            default = meta["workspace"]
        elif f.is_required():
            default = None
        else:
            default = ",".join(f.default) if isinstance(f.default, list) else f.default
        choices = f" One of: {expected(name)}." if get_origin(_strip_none(f.annotation)) is Literal else ""
        shown = "" if default is None and not meta["workspace"] else f" [default: {default}]"
        help_text = " ".join((f.description or "").split()) + choices + shown
        decls = [flag_of(name), *meta["aliases"]]
        if _strip_none(f.annotation) is bool:  # --packing/--no-packing: None (not given) keeps the rule
            decls = [f"{decls[0]}/--no-{decls[0].removeprefix('--')}", *decls[1:]]
        option = typer.Option(*decls, help=help_text, show_default=False)
        params[name] = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                         annotation=Annotated[_cli_type(f.annotation) | None, option])
    return params


def _strip_none(annotation):
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def train(**kw) -> None:
    """Fine-tune: CPT, SFT (loss on the answers only) or DPO, with the method and recipe you choose."""
    from agent.pipeline import train as run_stage
    from agent.pipeline import train_config
    from rag.workspace import Workspace
    from training.callbacks import Outlook, Progress
    from training.runs import is_main_process

    setup(kw.pop("verbose"))
    shell = {k: kw.pop(k) for k in SHELL_OPTIONS if k != "verbose"}
    if shell["num_processes"] > 1 and "LOCAL_RANK" not in os.environ:
        raise typer.Exit(_launch(shell["num_processes"], shell["accelerate_config"]))
    cfg = train_config(Workspace(shell["workspace"]), kw, recipe=shell["recipe"])
    if not is_main_process():  # other ranks of `--num-processes N` train quietly
        run_stage(cfg)
        return
    with progress_bar(f"{cfg.stage} ({cfg.method})", show_loss=True) as update:
        r = run_stage(cfg, callbacks=[Progress(update), Outlook(lambda line: console.print(line, soft_wrap=True))])
    if r.stopped_by:
        console.print(f"stopped by {r.stopped_by} at step {r.steps}; checkpoint saved, evaluation skipped. Continue "
                      "with --resume.")
        # not 0: the run did not finish (a scheduler requeues it, a script does not go on to merge); the shell's
        # code for the signal, as if it had killed the process
        raise typer.Exit(130 if r.stopped_by == "sigint" else 143)
    console.print(summary_line(r), soft_wrap=True)
    if r.eos_ok is False:
        console.print("[yellow]warning:[/] the trained model did not stop (EOS) after a training answer.")


def summary_line(r) -> str:
    """What a finished run says: steps, time, the smoothed training loss at its start and end (single
    batches swing too much to compare), the eval loss, and where the adapter and loss curve are."""
    loss = (f"train loss {r.start_loss:.3f} -> {r.end_loss:.3f} (mean of the first and last 10 % of logged steps)"
            if r.start_loss is not None else "no training loss logged")
    ev = f"eval loss {r.eval_loss:.3f}" if r.eval_loss is not None else "no evaluation"
    return (f"trained {r.steps} steps in {r.seconds:.0f} s: {loss}; {ev}. Adapter: {r.adapter_dir}  "
            f"(loss curve: {r.output_dir / 'loss.png'})")


def _signature() -> None:
    """Give `train` the derived options as its signature, which typer reads."""
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
              for n, (a, d) in SHELL_OPTIONS.items()]
    params += list(train_options().values())
    train.__signature__ = inspect.Signature(params)
    train.__annotations__ = {p.name: p.annotation for p in params}


_signature()


SAFE_PATH_FLAG = "-P" if sys.version_info >= (3, 11) else "-I"
"""The interpreter flag that keeps the current directory off sys.path."""


def _launch(n: int, config: Path | None) -> int:
    """Re-run this command in n processes (see `launch_command`)."""
    cmd = launch_command(n, config, relaunch_args(sys.argv[1:]))
    console.print(f"launching {n} processes: {' '.join(cmd[3:])}", soft_wrap=True)
    return subprocess.call(cmd, env={**os.environ, "PYTHONSAFEPATH": "1"})


def relaunch_args(argv: list[str]) -> list[str]:
    """This command's arguments without --num-processes (and its value): what each process runs."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--num-processes":
            skip = True
        elif not a.startswith("--num-processes="):
            out.append(a)
    return out


def launch_command(n: int, config: Path | None, args: list[str]) -> list[str]:
    """The command that runs `onboard <args>` in n processes: `accelerate launch --config_file` when given
    one (FSDP, DeepSpeed, multi-node: deploy/accelerate/), else torch's elastic launcher, which sets the
    RANK/WORLD_SIZE environment the Trainer's accelerate backend reads (DDP; gloo on CPU, NCCL on GPU).

    Every Python in it runs with `-P`: `python -m` would put the current directory first on sys.path,
    and a `torch.py` or an `agent/` folder where the user happens to be would be imported and run in
    place of the launcher or of Onboard. The launchers start each process as a program (`--no-python`)
    so that it gets `-P` too; Onboard and torch are found where they are installed. (`_launch` also sets
    PYTHONSAFEPATH=1 for anything those processes start.) Python 3.10 has no `-P`: `-I` there, which
    also ignores PYTHONPATH and the user's site-packages."""
    py = [sys.executable, SAFE_PATH_FLAG]
    if config:
        return [*py, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", str(n),
                "--no_python", *py, "-m", "agent.cli", *args]
    return [*py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), "--no-python",
            *py, "-m", "agent.cli", *args]
