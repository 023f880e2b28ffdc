"""Console helpers for the CLI: quiet library noise, progress bars, one-line errors."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager

import click
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
err_console = Console(stderr=True)


def handle_errors(fn: Callable) -> Callable:
    """The CLI's error boundary: a user's mistake (any `OnboardError`) prints `error: ...` and exits 1;
    anything else is a bug in Onboard and prints one line saying so, exit 2. ONBOARD_DEBUG=1 re-raises,
    showing the traceback. `typer.Exit` and `SystemExit` pass through."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from rag.errors import OnboardError

        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException):
            raise
        except OnboardError as e:
            if os.environ.get("ONBOARD_DEBUG") == "1":
                raise
            err_console.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - the boundary: a bug must not reach the user as a traceback
            if os.environ.get("ONBOARD_DEBUG") == "1":
                raise
            err_console.print(f"[bold red]bug:[/] {type(e).__name__}: {e}. This is a bug in Onboard, not "
                              "something you did wrong; rerun with ONBOARD_DEBUG=1 for the traceback and report "
                              "it with the command you ran.", highlight=False, markup=True, soft_wrap=True)
            sys.exit(2)

    return wrapper


def setup(verbose: bool = False) -> None:
    """Process-wide settings for CLI runs: threads, quiet third-party output. The Hub stays reachable
    (a Hub id as --base downloads once); HF_HUB_OFFLINE=1 keeps a run to the local cache."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # bitsandbytes looks for an optional CPU kernel on the Hub; its absence is expected offline.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    logging.getLogger("bm25s").setLevel(logging.INFO if verbose else logging.WARNING)  # it sets itself to DEBUG
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*autograd kernel was not registered.*")
    import torch

    threads = int(os.environ.get("ONBOARD_THREADS", "0")) or (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()


@contextmanager
def progress_bar(description: str, total: int | None = None, show_loss: bool = False):
    """Yield `update(done, total=None, loss=None, tokens_per_s=None)` driving a Rich progress bar.

    The bar is drawn on the first update, so a stage that fails while validating its input shows
    only its error, not an empty bar.
    """
    cols = [TextColumn("[bold]{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn()]
    if show_loss:
        cols.append(TextColumn("loss {task.fields[loss]}  {task.fields[rate]}"))
    cols += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(compact=True)]
    prog = Progress(*cols, console=console, transient=False)
    task = prog.add_task(description, total=total, loss="-", rate="", start=False)

    def update(done: int, total: int | None = None, loss: float | None = None, tokens_per_s: float | None = None) -> None:
        if not prog.live.is_started:
            prog.start()
            prog.start_task(task)
        fields = {"loss": f"{loss:.3f}"} if loss is not None else {}
        if tokens_per_s:
            fields["rate"] = f"{tokens_per_s:,.0f} tok/s"
        prog.update(task, completed=done, total=total, **fields)

    try:
        yield update
    finally:
        if prog.live.is_started:
            prog.stop()


@contextmanager
def stage_bars():
    """Yield `update(stage, done, total)`: one progress bar per stage, each drawn on its first update."""
    cols = [TextColumn("[bold]{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(compact=True)]
    prog = Progress(*cols, console=console, transient=False)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int | None = None) -> None:
        if not prog.live.is_started:
            prog.start()
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=total)
        prog.update(tasks[stage], completed=done, total=total)

    try:
        yield update
    finally:
        if prog.live.is_started:
            prog.stop()


class PausableBars:
    """`stage_bars` for a conversation: `update(stage, done, total)` draws the stage's bar; `pause()` stops
    the live display (the bars drawn so far stay on screen) so a message or a question prints below them
    and the user's typing is not overdrawn; the next update starts a new display."""

    def __init__(self):
        self._prog: Progress | None = None
        self._tasks: dict[str, int] = {}

    def update(self, stage: str, done: int, total: int | None = None) -> None:
        if self._prog is None:
            cols = [TextColumn("[bold]{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(compact=True)]
            self._prog, self._tasks = Progress(*cols, console=console, transient=False), {}
            self._prog.start()
        if stage not in self._tasks:
            self._tasks[stage] = self._prog.add_task(stage, total=total)
        self._prog.update(self._tasks[stage], completed=done, total=total)

    def pause(self) -> None:
        if self._prog is not None:
            self._prog.stop()
            self._prog = None
