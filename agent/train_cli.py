"""`onboard train`: CPT, SFT or DPO with LoRA, QLoRA, DoRA, prefix tuning or a full fine-tune; from a
recipe file or flags; on one process or several (`--num-processes`, through `accelerate launch`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.ui import console, progress_bar, setup
from agent.workspace import Workspace

STAGES = ("sft", "cpt", "dpo")


def _opt(help: str, **kw):
    return typer.Option(help=help, **kw)


def train(
    workspace: Annotated[Path, typer.Option("--workspace", "-w", envvar="ONBOARD_WORKSPACE",
                                            help="Workspace folder.")] = Path(".onboard"),
    stage: Annotated[str | None, _opt("sft (chat Q/A), cpt (document text) or dpo (preference pairs) "
                                      "[default: the recipe's, else sft].")] = None,
    recipe: Annotated[Path | None, _opt("A recipe YAML (training/recipes/...); flags you pass override it.")] = None,
    base: Annotated[str | None, _opt("Base model folder, Hub id or .gguf [default: WORKSPACE/base/tiny].")] = None,
    data: Annotated[Path | None, _opt("Training JSONL [default: WORKSPACE/data/STAGE/train.jsonl].")] = None,
    eval_data: Annotated[Path | None, _opt("Evaluation JSONL [default: WORKSPACE/data/STAGE/test.jsonl].")] = None,
    output: Annotated[Path | None, _opt("Run folder [default: WORKSPACE/runs/STAGE].")] = None,
    method: Annotated[str | None, _opt("lora, qlora (4-bit NF4 base), dora, prefix or full [default: qlora]. "
                                       "On CPU, lora on an fp32 base is the fastest.")] = None,
    init_adapter: Annotated[Path | None, _opt("DPO: start from this SFT adapter (its model is the reference).")] = None,
    beta: Annotated[float | None, _opt("DPO: KL strength.")] = None,
    epochs: Annotated[float | None, _opt("Passes over the data [default: 3].")] = None,
    max_steps: Annotated[int | None, _opt("Stop after this many steps (overrides --epochs).")] = None,
    lr: Annotated[float | None, _opt("Learning rate [default: 2e-4].")] = None,
    batch_size: Annotated[int | None, _opt("Examples per step per process [default: 4].")] = None,
    grad_accum: Annotated[int | None, _opt("Gradient accumulation steps.")] = None,
    lora_r: Annotated[int | None, _opt("LoRA rank (alpha = 2 x rank unless the recipe says).")] = None,
    max_length: Annotated[int | None, _opt("Truncate (or pack) to this many tokens [default: 1024].")] = None,
    packing: Annotated[bool | None, _opt("Pack examples into full sequences [default: CPT on, SFT off].")] = None,
    gradient_checkpointing: Annotated[bool | None, _opt("Trade compute for activation memory.")] = None,
    early_stopping: Annotated[int | None, _opt("Stop after N evaluations without a better eval loss.")] = None,
    eval_steps: Annotated[int | None, _opt("Evaluate every N steps [default: each epoch].")] = None,
    save_steps: Annotated[int | None, _opt("Checkpoint every N steps (and on SIGTERM) [default: 100].")] = None,
    seed: Annotated[int | None, _opt("Seed for initialisation and data order.")] = None,
    report_to: Annotated[str | None, _opt("tensorboard (default), wandb, mlflow or none; comma-separated.")] = None,
    num_processes: Annotated[int, _opt("Processes (GPUs) to train on, through `accelerate launch`.")] = 1,
    accelerate_config: Annotated[Path | None, _opt("accelerate config (deploy/accelerate/*.yaml).")] = None,
    force: Annotated[bool, _opt("Train again over an existing run.")] = False,
    resume: Annotated[bool, _opt("Continue the run from its last checkpoint, same data order.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
):
    """Fine-tune: CPT, SFT (loss on the answers only) or DPO, with the method and recipe you choose."""
    setup(verbose)
    if num_processes > 1 and "LOCAL_RANK" not in os.environ:
        raise typer.Exit(_launch(num_processes, accelerate_config))
    from training.runs import TrainConfig

    ws = Workspace(workspace)
    fields = _recipe_fields(recipe) if recipe else {}
    stage = stage or fields.pop("stage", None) or "sft"
    fields.pop("stage", None)
    if stage not in STAGES:
        raise ValueError(f"--stage must be one of {', '.join(STAGES)} (got {stage!r})")
    flags = dict(base_model=base, method=method, init_adapter=init_adapter, beta=beta, epochs=epochs,
                 max_steps=max_steps, learning_rate=lr, batch_size=batch_size, grad_accum=grad_accum, lora_r=lora_r,
                 lora_alpha=2 * lora_r if lora_r else None, max_length=max_length, packing=packing,
                 gradient_checkpointing=gradient_checkpointing, early_stopping_patience=early_stopping,
                 eval_steps=eval_steps, save_steps=save_steps, seed=seed,
                 report_to=report_to.split(",") if report_to else None)
    fields.update({k: v for k, v in flags.items() if v is not None})
    test = ws.root / "data" / stage / "test.jsonl"
    cfg = TrainConfig(
        **{"base_model": str(ws.tiny_base), **fields},
        train_file=data or ws.root / "data" / stage / "train.jsonl",
        eval_file=eval_data or (test if test.exists() and test.stat().st_size else None),
        output_dir=output or ws.root / "runs" / stage, force=force, resume=resume,
    )
    from importlib import import_module

    from training.callbacks import Progress
    from training.runs import is_main_process

    run = import_module(f"training.{stage}").run
    if not is_main_process():  # other ranks of `--num-processes N` train quietly
        run(cfg)
        return
    with progress_bar(f"{stage} ({cfg.method})", show_loss=True) as update:
        r = run(cfg, callbacks=[Progress(update)])
    if r.stopped_by:
        console.print(f"stopped by {r.stopped_by} at step {r.steps}; checkpoint saved. Continue with --resume.")
        raise typer.Exit(0)
    ev = f", eval loss {r.eval_loss:.3f}" if r.eval_loss is not None else ""
    console.print(f"trained {r.steps} steps in {r.seconds:.0f} s: loss {r.first_loss:.3f} -> {r.last_loss:.3f}{ev}. "
                  f"Adapter: {r.adapter_dir}  (loss curve: {r.output_dir / 'loss.png'})")
    if r.eos_ok is False:
        console.print("[yellow]warning:[/] the trained model did not stop (EOS) after a training answer.")


def _recipe_fields(path: Path) -> dict:
    """TrainConfig fields from a recipe (training/recipes/README: keys and what they mean)."""
    from training.recipes import load_recipe

    r = load_recipe(path)
    names = {"gradient_accumulation_steps": "grad_accum", "base_model": "base_model"}
    skip = {"notes", "bf16", "gpu", "command"}
    return {names.get(k, k): v for k, v in r.items() if k not in skip}


def _launch(n: int, config: Path | None) -> int:
    """Re-run this command in n processes: `accelerate launch --config_file` when given one (FSDP,
    DeepSpeed, multi-node: deploy/accelerate/), else torch's elastic launcher, which sets the
    RANK/WORLD_SIZE environment the Trainer's accelerate backend reads (DDP; gloo on CPU, NCCL on GPU)."""
    args = [a for a in sys.argv[1:] if not a.startswith("--num-processes")]
    if "--num-processes" in sys.argv:  # drop its value too
        i = sys.argv.index("--num-processes")
        args = sys.argv[1:i] + sys.argv[i + 2:]
    if config:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
               "--num_processes", str(n), "-m", "agent.cli", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
               "-m", "agent.cli", *args]
    console.print(f"launching {n} processes: {' '.join(cmd[2:])}")
    return subprocess.call(cmd)
