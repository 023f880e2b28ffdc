"""The one declaration of a training run: `TrainConfig`.

`onboard train`'s options and their help (agent/cli/train.py derives them with `cli_options()`), the
recipe schema (training/recipes/ loads recipes through `recipe_fields()`), and what the library's
`run(cfg)` reads are all this class: a field added here is a flag, a recipe key and a config value at
once, with one help text. Each field's docstring is its help.

Stages and methods are declared once, here:
- stages: `sft` (chat Q/A, loss on the answers), `cpt` (document text, packed), `dpo` (preference pairs).
- methods: `lora` (full-precision base: on CPU the fastest), `qlora` (4-bit NF4 base + LoRA; least
  memory), `dora` (weight-decomposed LoRA), `prefix` (prefix tuning), `full` (every weight; small models).

What `--resume` may change is declared here too, per field (`_meta(resume=...)`, read by
`resume_rule()`; training/record.py compares a resumed run against its `config.json`):
- "same" (the default): what the weights are trained with (method, LoRA shape, learning rate, batch,
  sequence length, precision, seed, packing...). A resumed run that changed one would be neither run,
  so it is refused, naming the flag with the old and the new value.
- "content": a file or model, compared by what it holds, not where it is (the data by sha256, the base
  by its weights' fingerprint): a moved workspace resumes; edited data or another base is refused.
- "free": when to stop and what to report, not what is learned: --epochs and --max-steps (to extend or
  shorten a run; the learning-rate schedule is recomputed from the resumed step, and the record says
  so), logging, checkpoint and eval intervals, early stopping, trackers, --no-eval, the EOS check,
  gradient checkpointing (same numbers, less memory), and the run controls themselves.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from training.errors import BadConfig

Stage = Literal["sft", "cpt", "dpo"]
Method = Literal["lora", "qlora", "dora", "prefix", "full"]
STAGES: tuple[str, ...] = get_args(Stage)
METHODS: tuple[str, ...] = get_args(Method)
Tracker = Literal["tensorboard", "wandb", "mlflow", "none"]

CHECKPOINTING_FROM = 100_000_000
"""Parameter count from which gradient checkpointing is on by default when the memory of the model or
method cannot be estimated (otherwise training.memory.needs_checkpointing decides)."""


ResumeRule = Literal["same", "content", "free"]


def _meta(flag: str | None = None, *aliases: str, recipe: bool = True, workspace: str | None = None,
          resume: ResumeRule = "same") -> dict:
    """Field metadata read by `cli_options()`, `recipe_fields()` and `resume_rule()`.

    Args:
        flag: the CLI option; None: `--field-name`; "": no CLI option (the field is set by recipes only).
        aliases: more option names (kept for old spellings, e.g. `--grad-accum`).
        recipe: whether a recipe file may set this field (paths and run control may not).
        workspace: what the CLI fills in from the workspace when the flag is not given (shown in --help).
        resume: whether `--resume` may change it: "same" (no), "content" (the path may move, what it holds
            may not), "free" (yes); see the module docstring.
    """
    return {"flag": flag, "aliases": list(aliases), "recipe": recipe, "workspace": workspace, "resume": resume}


class TrainConfig(BaseModel):
    """One training run (CPT, SFT or DPO). Stage-specific fields say which stage reads them."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)

    stage: Stage = Field("sft", json_schema_extra=_meta())
    """sft (chat Q/A, loss on the answers), cpt (document text) or dpo (preference pairs)."""
    base_model: str = Field(json_schema_extra=_meta("--base", workspace="WORKSPACE/base/tiny",
                                                    resume="content"))
    """Base model: a local folder, a Hub id or a .gguf file."""
    train_file: Path = Field(json_schema_extra=_meta("--data", recipe=False, resume="content",
                                                                 workspace="WORKSPACE/data/STAGE/train.jsonl"))
    """Training JSONL: {"text"} for CPT, chat records for SFT, preference triples for DPO."""
    output_dir: Path = Field(json_schema_extra=_meta("--output", recipe=False, resume="free",
                                                                   workspace="WORKSPACE/runs/STAGE"))
    """Run folder: adapter (or model), checkpoints, config.json, metrics.jsonl, loss.png, tensorboard/."""
    eval_file: Path | None = Field(None, json_schema_extra=_meta("--eval-data", recipe=False, resume="content",
                                                                  workspace="WORKSPACE/data/STAGE/test.jsonl if any"))
    """Held-out JSONL in the same format; eval loss is logged each epoch (or every eval_steps)."""
    method: Method = Field("qlora", json_schema_extra=_meta())
    """lora, qlora (4-bit NF4 base), dora, prefix or full. On CPU, lora on an fp32 base is the fastest."""
    lora_r: int = Field(16, gt=0, json_schema_extra=_meta())
    """LoRA rank."""
    lora_alpha: int | None = Field(None, gt=0, json_schema_extra=_meta())
    """LoRA scale; default 2 x lora_r."""
    lora_dropout: float = Field(0.05, ge=0, lt=1, json_schema_extra=_meta())
    """Dropout on the LoRA path."""
    target_modules: str | list[str] = Field("all-linear", json_schema_extra=_meta(""))
    """LoRA targets; "all-linear" finds every linear layer except the output head."""
    num_virtual_tokens: int = Field(20, gt=0, json_schema_extra=_meta())
    """prefix: virtual tokens per layer."""
    init_adapter: Path | None = Field(None, json_schema_extra=_meta(recipe=False, resume="content"))
    """DPO: start from this SFT adapter; its model is then the reference the DPO loss compares against."""
    beta: float = Field(0.1, gt=0, json_schema_extra=_meta())
    """DPO: strength of the KL penalty towards the reference model."""
    packing: bool | None = Field(None, json_schema_extra=_meta())
    """Pack several examples per sequence (padding-free); default: on for CPT, off for SFT."""
    epochs: float = Field(3.0, gt=0, json_schema_extra=_meta(resume="free"))
    """Passes over the data."""
    max_steps: int = Field(-1, json_schema_extra=_meta(resume="free"))
    """Stop after this many optimizer steps (overrides epochs when > 0)."""
    learning_rate: float = Field(2e-4, gt=0, json_schema_extra=_meta("--lr", "--learning-rate"))
    """Learning rate."""
    batch_size: int = Field(4, gt=0, json_schema_extra=_meta())
    """Examples per step per process."""
    gradient_accumulation_steps: int = Field(1, gt=0, json_schema_extra=_meta("--gradient-accumulation-steps",
                                                                              "--grad-accum"))
    """Steps per optimizer update (effective batch = batch x accumulation x processes)."""
    max_length: int = Field(1024, gt=0, json_schema_extra=_meta())
    """Tokens per example: longer ones are truncated (CPT: packed to this length)."""
    gradient_checkpointing: bool | None = Field(None, json_schema_extra=_meta(resume="free"))
    """Recompute activations in the backward pass; default: on only when the batch would not fit the
    machine's memory without it (training.memory; it costs ~30 % more compute, and on a 2-core CPU the 0.5B
    model trained 1.5x slower with it at batch 1: bench/RESULTS.md)."""
    bf16: bool | None = Field(None, json_schema_extra=_meta())
    """Compute in bfloat16; default: on CUDA yes, on CPU no (bf16 matmuls are ~18x slower there)."""
    early_stopping_patience: int | None = Field(None, gt=0, json_schema_extra=_meta("--early-stopping", resume="free"))
    """Stop after N evaluations without a better eval loss (needs eval data)."""
    eval_steps: int | None = Field(None, gt=0, json_schema_extra=_meta(resume="free"))
    """Evaluate every N steps; default: each epoch."""
    evaluate: bool = Field(True, json_schema_extra=_meta("--eval", resume="free"))
    """Evaluate on the eval data during training; --no-eval for a run without any evaluation."""
    logging_steps: int = Field(1, gt=0, json_schema_extra=_meta(resume="free"))
    """Log loss every N steps."""
    save_steps: int = Field(100, gt=0, json_schema_extra=_meta(resume="free"))
    """Checkpoint every N steps (and on SIGTERM), kept in the run's checkpoints/."""
    seed: int = Field(42, json_schema_extra=_meta())
    """Seed for initialisation and data order."""
    report_to: list[Tracker] = Field(["tensorboard"], json_schema_extra=_meta(resume="free"))
    """Trackers, comma-separated: tensorboard (in the run folder), wandb, mlflow, or none."""
    check_eos: bool = Field(True, json_schema_extra=_meta(resume="free"))
    """SFT: after training, generate on a training prompt and warn unless the model stops (EOS)."""
    resume: bool = Field(False, json_schema_extra=_meta(recipe=False, resume="free"))
    """Continue the run from its last checkpoint, same data order."""
    force: bool = Field(False, json_schema_extra=_meta(recipe=False, resume="free"))
    """Train again over an existing run."""

    @field_validator("base_model", mode="before")
    @classmethod
    def _path_to_str(cls, v):
        return str(v) if isinstance(v, Path) else v

    @field_validator("report_to", mode="before")
    @classmethod
    def _split_trackers(cls, v):
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _rules(self) -> TrainConfig:
        if self.max_steps == 0 or self.max_steps < -1:  # 0 would train one step: TRL reads it as "not set"
            raise ValueError(f"--max-steps must be a positive number of steps, or -1 to train for --epochs "
                             f"(got {self.max_steps}).")
        if self.lora_alpha is None:  # the usual LoRA scale: alpha = 2 x rank
            object.__setattr__(self, "lora_alpha", 2 * self.lora_r)
        if not self.evaluate and self.early_stopping_patience:
            raise ValueError("--early-stopping watches the eval loss, and --no-eval turns evaluation off: drop one.")
        if not self.evaluate and self.eval_file:
            raise ValueError(f"--no-eval and --eval-data {self.eval_file}: drop --eval-data for a run without "
                             "evaluation, or --no-eval to evaluate on it.")
        if self.early_stopping_patience and not self.eval_file:
            raise ValueError("--early-stopping needs an eval file (--eval-data) to watch.")
        return self

    @classmethod
    def make(cls, **values) -> TrainConfig:
        """Build a config, turning validation errors into one `BadConfig` that names each flag.

        Raises:
            BadConfig: a value is of the wrong type or out of range, or a required path is missing.
        """
        try:
            return cls(**values)
        except ValidationError as e:
            raise BadConfig("; ".join(_describe(err) for err in e.errors())) from None

    def summary(self) -> dict[str, Any]:
        """JSON-ready values (paths as strings), as a run's config.json records them."""
        return self.model_dump(mode="json")


def _describe(err: dict) -> str:
    loc = [str(x) for x in err.get("loc", ())]
    if not loc:  # a model-level rule: its message already names the flags
        return str(err["msg"]).removeprefix("Value error, ")
    name = loc[0]
    if err["type"] == "missing":
        return f"{flag_of(name)} is required"
    got = err.get("input")
    return f"{flag_of(name)} must be {expected(name)} (got {got!r})"


def field_meta(name: str) -> dict:
    return TrainConfig.model_fields[name].json_schema_extra or _meta()  # type: ignore[return-value]


def flag_of(name: str) -> str:
    """The CLI flag of field `name` (e.g. learning_rate -> --lr)."""
    flag = field_meta(name)["flag"]
    return flag or f"--{name.replace('_', '-')}"


def resume_rule(name: str) -> ResumeRule:
    """Whether `--resume` may change field `name`: "same", "content" or "free" (see the module docstring)."""
    return field_meta(name).get("resume", "same")


def expected(name: str) -> str:
    """What field `name` accepts, in words: 'lora | qlora | ...', 'a positive integer', 'true or false'."""
    f = TrainConfig.model_fields[name]
    ann = _unwrap(f.annotation)
    positive = any(getattr(m, "gt", None) == 0 for m in f.metadata)
    if get_origin(ann) is Literal:
        return " | ".join(str(a) for a in get_args(ann))
    if get_origin(ann) is list:
        inner = _unwrap(get_args(ann)[0])
        return "a comma-separated list of " + (" | ".join(get_args(inner)) if get_origin(inner) is Literal else "names")
    if ann is bool:
        return "true or false"
    if ann is int:
        return "a positive integer" if positive else "an integer"
    if ann is float:
        return "a positive number" if positive else "a number"
    if ann is Path:
        return "a path"
    return "a string"


def _unwrap(ann):
    """`X | None` -> X (first non-None member for other unions)."""
    if get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        return args[0]
    return ann


def recipe_fields() -> tuple[str, ...]:
    """The keys a recipe may set: every TrainConfig field not marked recipe=False."""
    return tuple(n for n in TrainConfig.model_fields if field_meta(n)["recipe"])


def check_value(name: str, value):
    """Validate one field's value alone (recipes are partial configs).

    Raises:
        BadConfig: `name must be <expected> (got <value>)`.
    """
    from pydantic import TypeAdapter

    f = TrainConfig.model_fields[name]
    try:
        ann = typing.Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
        return TypeAdapter(ann).validate_python(value)
    except ValidationError:
        raise BadConfig(f"{name} must be {expected(name)} (got {value!r}).") from None
