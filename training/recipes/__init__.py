"""Training recipes: one YAML file per (model family, method, hardware), read by `onboard train --recipe`.

    training/recipes/<family>/<method>-<gpu>.yaml     e.g. qwen2.5-7b/qlora-24gb.yaml, tiny/lora-cpu.yaml

Each file's first line is the command that runs it; batch size, accumulation and checkpointing come
from `training.memory.recommend()`. The keys and what they mean: README.md beside this file.
"""

from __future__ import annotations

from pathlib import Path

from training.errors import BadRecipe

RECIPES_DIR = Path(__file__).resolve().parent
STAGES = ("sft", "cpt", "dpo")
METHODS = ("lora", "qlora", "dora", "prefix", "full")
_INT = ("lora_r", "lora_alpha", "max_length", "batch_size", "gradient_accumulation_steps")
_FLOAT = ("lora_dropout", "learning_rate", "epochs")
_BOOL = ("gradient_checkpointing", "packing", "bf16")
KEYS = ("base_model", "method", "stage", *_INT, *_FLOAT, *_BOOL, "notes")
REQUIRED = ("method", "stage")


def load_recipe(path: str | Path) -> dict:
    """Read and check a recipe; returns its keys with values of the right types.

    Raises:
        BadRecipe: the file is missing or not a YAML mapping, a key is unknown or missing, or a value
            has the wrong type; the message names the file and the key.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        known = ", ".join(str(p.relative_to(RECIPES_DIR)) for p in list_recipes())
        raise BadRecipe(f"{path}: no such recipe. Recipes shipped with Onboard (training/recipes/): {known}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise BadRecipe(f"{path}: not valid YAML ({e}).") from None
    if not isinstance(data, dict):
        raise BadRecipe(f"{path}: a recipe is a YAML mapping of keys to values.")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise BadRecipe(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}. "
                        f"Known keys: {', '.join(KEYS)}.")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise BadRecipe(f"{path}: missing {', '.join(missing)} (e.g. `method: qlora`, `stage: sft`).")
    return {k: _check(path, k, v) for k, v in data.items()}


def _check(path: Path, key: str, value):
    def bad(what: str) -> BadRecipe:
        return BadRecipe(f"{path}: {key} must be {what} (got {value!r}).")

    if key == "method" and value not in METHODS:
        raise bad(" | ".join(METHODS))
    if key == "stage" and value not in STAGES:
        raise bad(" | ".join(STAGES))
    if key in _BOOL and not isinstance(value, bool):
        raise bad("true or false")
    if key in _INT and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise bad("a positive integer")
    if key in _FLOAT:
        try:  # YAML reads 2e-4 (no dot) as a string: accept it as the number it is meant to be
            value = float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
        if value < 0 or (key != "lora_dropout" and value == 0):
            raise bad("a positive number")
    if key in ("base_model", "notes") and not isinstance(value, str):
        raise bad("a string")
    return value


def list_recipes() -> list[Path]:
    """Every recipe shipped with Onboard, sorted by path."""
    return sorted(RECIPES_DIR.glob("*/*.yaml"))
