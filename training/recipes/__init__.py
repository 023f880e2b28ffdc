"""Training recipes: one YAML file per (model family, method, hardware), read by `onboard train --recipe`.

    training/recipes/<family>/<method>-<gpu>.yaml     e.g. qwen2.5-7b/qlora-24gb.yaml, tiny/lora-cpu.yaml

Each file's first line is the command that runs it; batch size, accumulation and checkpointing come
from `training.memory.recommend()`. A recipe is a partial `training.config.TrainConfig`: its keys are
that class's fields (those a recipe may set) plus `notes`, checked with the same types and ranges.
README.md beside this file lists them.
"""

from __future__ import annotations

from pathlib import Path

from training.config import METHODS, STAGES, check_value, recipe_fields
from training.errors import BadConfig, BadRecipe

RECIPES_DIR = Path(__file__).resolve().parent
NOTES = "notes"
"""The one recipe key that is not a TrainConfig field: what the recipe assumes and what was measured."""
REQUIRED = ("method", "stage")

__all__ = ["METHODS", "RECIPES_DIR", "STAGES", "BadRecipe", "keys", "list_recipes", "load_recipe"]


def keys() -> tuple[str, ...]:
    """Every key a recipe may hold."""
    return (*recipe_fields(), NOTES)


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
    unknown = sorted(set(data) - set(keys()))
    if unknown:
        raise BadRecipe(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))}. "
                        f"Known keys: {', '.join(keys())}.")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise BadRecipe(f"{path}: missing {', '.join(missing)} (e.g. `method: qlora`, `stage: sft`).")
    out = {}
    for k, v in data.items():
        if k == NOTES:
            if not isinstance(v, str):
                raise BadRecipe(f"{path}: notes must be a string (got {v!r}).")
            out[k] = v
            continue
        try:
            out[k] = check_value(k, v)
        except BadConfig as e:
            raise BadRecipe(f"{path}: {e}") from None
    return out


def list_recipes() -> list[Path]:
    """Every recipe shipped with Onboard, sorted by path."""
    return sorted(RECIPES_DIR.glob("*/*.yaml"))
