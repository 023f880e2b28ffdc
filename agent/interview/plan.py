"""The plan an interview fills: one typed record, saved as WORKSPACE/plan.yaml so `onboard run plan.yaml`
can replay it without chatting.

Every slot has a default, so a plan is valid from the first question on; `answered` records which slots the
user set (the rest are the agent's recommendations, and the plan says so when shown).

    plan = Plan(docs=Path("examples/docs"), languages=("en", "zh"))
    save(plan, ws.root / "plan.yaml")
    again = load(ws.root / "plan.yaml")
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import AgentError

SCHEMA_VERSION = 1


class BadPlan(AgentError):
    """A plan file that cannot be read: the message names the file, the field and what to write."""


class Hardware(BaseModel):
    """The machine the plan trains on: detected, with what the user said where detection cannot tell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Literal["cpu", "cuda"] = "cpu"
    gpus: int = Field(0, ge=0)
    gpu_memory_gib: float | None = Field(None, gt=0)
    """Memory of one GPU."""
    memory_gib: float | None = Field(None, gt=0)
    """The machine's RAM."""


class Training(BaseModel):
    """What `onboard train` gets: the recommendation (training/memory.py), or the user's corrections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lora_r: int = Field(16, ge=1)
    batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(4, ge=1)
    max_length: int = Field(1024, ge=16)
    gradient_checkpointing: bool | None = None
    """None: TrainConfig's own rule."""
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    max_steps: int | None = Field(None, ge=1)
    """A cap on optimizer steps (set when the time budget is shorter than the epochs would take)."""


class Plan(BaseModel):
    """Everything the interview decides, with the product's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    purpose: str = ""
    """What the assistant is for, in the user's words."""
    audience: str = ""
    """Who asks it (customers, staff, developers)."""
    languages: tuple[Literal["en", "zh"], ...] = ("en", "zh")
    docs: Path | None = None
    """The documents folder; None until the user names one."""
    base_model: str = "tiny"
    """"tiny" (the bundled tiny model), a local folder, a Hub id in the cache, or a GGUF file."""
    stage: Literal["sft", "raft", "dpo", "cpt"] = "sft"
    method: Literal["lora", "qlora", "dora", "full"] = "qlora"
    hardware: Hardware = Hardware()
    time_budget_hours: float | None = Field(None, gt=0)
    training: Training = Training()
    tone_examples: tuple[str, ...] = ()
    evaluate: bool = True
    deploy: Literal["none", "local", "compose", "kubernetes"] = "local"
    answered: tuple[str, ...] = ()
    """The slots the user answered (in order); the others hold the agent's defaults."""

    def with_answer(self, slot: str, value: object) -> Plan:
        """A copy with `slot` set (validated) and marked answered.

        Raises:
            BadPlan: no such slot, or a value the slot refuses (the message says which and why).
        """
        if slot not in type(self).model_fields or slot in ("schema_version", "answered"):
            raise BadPlan(f"the plan has no slot {slot!r}; slots: {', '.join(_slots())}")
        data = self.model_dump()
        data[slot] = value
        data["answered"] = (*[s for s in self.answered if s != slot], slot)
        try:
            return Plan.model_validate(data)
        except ValidationError as e:
            raise BadPlan(f"{slot}: {_first_error(e)}") from None


def _slots() -> list[str]:
    return [n for n in Plan.model_fields if n not in ("schema_version", "answered")]


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def save(plan: Plan, path: Path) -> None:
    """Write the plan as YAML, atomically (a crash leaves the old file or the new one, never half)."""
    import yaml

    from rag.io import atomic_write

    atomic_write(path, yaml.safe_dump(plan.model_dump(mode="json"), allow_unicode=True, sort_keys=False))


def load(path: Path) -> Plan:
    """Read a plan.yaml.

    Raises:
        BadPlan: missing file, not YAML, an unknown schema version, an unknown field or a bad value; the
            message names the file and the field.
    """
    import yaml

    if not path.is_file():
        raise BadPlan(f"{path}: no such plan file; `onboard chat` writes one to WORKSPACE/plan.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BadPlan(f"{path}: not a YAML file ({e})") from None
    if not isinstance(data, dict):
        raise BadPlan(f"{path}: a plan is a YAML mapping of slots to values, not {type(data).__name__}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise BadPlan(f"{path}: schema_version {version} is not one this Onboard reads ({SCHEMA_VERSION}); "
                      "upgrade Onboard or run `onboard chat` again")
    try:
        return Plan.model_validate(data)
    except ValidationError as e:
        raise BadPlan(f"{path}: {_first_error(e)}") from None
