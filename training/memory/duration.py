"""How much a run will train on and how long it will take, and what to change when that is too long.

Memory can be estimated before anything loads (estimate.py); time cannot, honestly: a step's speed
depends on the machine's kernels, threads and the data's lengths. So the run counts its tokens on the
tokenized dataset before the first step (`RunSize`), times its first optimizer step, and multiplies
(`duration_s`). Past an hour, `suggestions` says what would shorten it, most effective first.

    size = RunSize(steps=1200, sequences=4800, mean_tokens=310.0, examples=1600, epochs=3.0)
    describe_size(size)      # "1,200 steps on 1,488,000 tokens (1,600 sequences x 3 epochs x 310 tokens)"
    suggestions(duration_s(size, 4.2), step_s=4.2, size=size, max_steps_given=False, max_length=1024,
                device="cpu", parameters=494_000_000)
"""

from __future__ import annotations

from dataclasses import dataclass

LONG_RUN_S = 3600.0
"""From this estimate on, the run says what would make it shorter."""
SMALL_MODEL = 100_000_000
"""Parameters below which a base counts as small (no point suggesting the tiny model)."""
LONG_SEQUENCES = 256
"""Mean tokens per sequence from which a shorter --max-length is worth suggesting."""


@dataclass
class RunSize:
    """What the steps still to run will train on."""

    steps: int
    """Optimizer steps left (all of them, unless the run resumes)."""
    sequences: int
    """Sequences those steps see, all processes together."""
    mean_tokens: float
    """Tokens per sequence, measured on the tokenized dataset."""
    examples: int
    """Sequences in the tokenized dataset (packed ones, for CPT)."""
    epochs: float | None = None
    """Passes over the data when --epochs sets the length; None when --max-steps does."""

    @property
    def tokens(self) -> int:
        return round(self.sequences * self.mean_tokens)


def duration_s(size: RunSize, step_s: float) -> float:
    """The training steps' time, from one timed step (evaluation and checkpoints come on top)."""
    return size.steps * step_s


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_size(size: RunSize) -> str:
    """One line: steps and tokens, and how the tokens come about."""
    how = (f"{size.examples:,} sequences x {size.epochs:g} epochs" if size.epochs is not None
           else f"{size.sequences:,} sequences")
    return f"{size.steps:,} steps on {size.tokens:,} tokens ({how} x {size.mean_tokens:.0f} tokens)"


def suggestions(seconds: float, *, step_s: float, size: RunSize, max_steps_given: bool, max_length: int,
                device: str, parameters: int, limit: float = LONG_RUN_S) -> list[str]:
    """What would bring a run estimated at `seconds` under `limit`, most effective first; empty when it
    is already under.

    Args:
        step_s: one optimizer step's time.
        max_steps_given: whether --max-steps (rather than --epochs) sets the length.
        device: "cuda" or "cpu".
        parameters: the base model's parameter count.
    """
    if seconds <= limit:
        return []
    fit = max(1, int(limit / step_s))
    out = []
    if size.epochs is not None and size.epochs > 1:
        out.append(f"fewer --epochs (now {size.epochs:g}), or --max-steps {fit} (about {human_duration(limit)})")
    else:
        out.append(f"--max-steps {fit} (about {human_duration(limit)} at this speed)"
                   + ("" if max_steps_given else ", less than one pass over the data"))
    if parameters >= SMALL_MODEL:
        out.append(f"the tiny model to try the pipeline first (leave out --base; this base has "
                   f"{parameters / 1e9:.1f}B parameters)")
    if device != "cuda":
        out.append("a GPU (this run is on the CPU)")
    if size.mean_tokens >= LONG_SEQUENCES:
        out.append(f"a shorter --max-length (now {max_length}; sequences average {size.mean_tokens:.0f} tokens)")
    return out
