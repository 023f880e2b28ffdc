import re
from pathlib import Path

import pytest
import yaml

from training.memory import PRESETS, GiB, estimate, recommend
from training.recipes import METHODS, RECIPES_DIR, STAGES, BadRecipe, list_recipes, load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = list_recipes()
ACCELERATE = sorted((ROOT / "deploy" / "accelerate").glob("*.yaml"))
EXPECTED = ["qwen2.5-0.5b/lora-cpu.yaml", "qwen2.5-0.5b/qlora-cpu.yaml", "qwen2.5-7b/qlora-24gb.yaml",
            "qwen2.5-7b/lora-80gb.yaml", "llama-3.1-8b/qlora-24gb.yaml", "mistral-7b/qlora-16gb.yaml",
            "tiny/lora-cpu.yaml"]


def test_the_promised_recipes_exist():
    names = {str(p.relative_to(RECIPES_DIR)) for p in RECIPES}
    assert set(EXPECTED) <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_every_recipe_loads_and_starts_with_its_command(path):
    r = load_recipe(path)
    assert r["method"] in METHODS and r["stage"] in STAGES
    first = path.read_text().splitlines()[0]
    assert first.startswith(("# onboard train", "# accelerate launch")), first
    assert str(path.relative_to(ROOT)) in first, "the command names this very file"
    assert path.parent.name in PRESETS, "the folder is a training.memory preset (the model family and size)"
    assert path.stem.split("-")[0] == r["method"], "file name <method>-<hardware>.yaml"


@pytest.mark.parametrize("path", [p for p in RECIPES if re.search(r"-\d+gb$", p.stem)],
                         ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_gpu_recipes_fit_their_gpu_by_the_estimate(path):
    r = load_recipe(path)
    gib = int(re.search(r"-(\d+)gb$", path.stem).group(1))
    e = estimate(PRESETS[path.parent.name], r["method"], r["max_length"], r["batch_size"], r["lora_r"],
                 r["gradient_checkpointing"], "bf16" if r.get("bf16") else "fp32", lora_dropout=r["lora_dropout"])
    assert e.total <= gib * 0.9 * GiB


@pytest.mark.parametrize("path", [p for p in RECIPES if re.search(r"-\d+gb$", p.stem)],
                         ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_gpu_recipes_hold_what_recommend_says(path):
    """The recipes were written from training.memory.recommend(); a change to the estimate shows up here."""
    r = load_recipe(path)
    gib = int(re.search(r"-(\d+)gb$", path.stem).group(1))
    plan = recommend(PRESETS[path.parent.name], r["method"], r["max_length"], gib, lora_r=r["lora_r"],
                     lora_dropout=r["lora_dropout"], target_batch=r["batch_size"] * r["gradient_accumulation_steps"])
    assert plan.recipe_values() == {k: r[k] for k in plan.recipe_values()}


def test_unknown_key_is_named_with_the_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("# onboard train --recipe mine.yaml\nmethod: lora\nstage: sft\nbatchsize: 4\n")
    with pytest.raises(BadRecipe, match=r"mine\.yaml: unknown key batchsize.*batch_size"):
        load_recipe(f)


@pytest.mark.parametrize("text,match", [
    ("method: adapters\nstage: sft\n", "method must be"),
    ("method: lora\nstage: rlhf\n", "stage must be"),
    ("method: lora\nstage: sft\nbatch_size: 0\n", "batch_size must be a positive integer"),
    ("method: lora\nstage: sft\ngradient_checkpointing: maybe\n", "gradient_checkpointing must be true or false"),
    ("method: lora\n", "missing stage"),
    ("- method: lora\n", "YAML mapping"),
])
def test_bad_values_are_named(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(BadRecipe, match=match):
        load_recipe(f)


def test_learning_rate_written_without_a_dot_is_still_a_number(tmp_path):
    f = tmp_path / "lr.yaml"
    f.write_text("method: lora\nstage: sft\nlearning_rate: 2e-4\n")  # YAML 1.1 reads this as a string
    assert load_recipe(f)["learning_rate"] == 2e-4


def test_missing_recipe_lists_the_shipped_ones(tmp_path):
    with pytest.raises(BadRecipe, match="qwen2.5-7b/qlora-24gb.yaml"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_every_accelerate_config_parses_and_starts_with_its_command(path):
    cfg = yaml.safe_load(path.read_text())
    assert isinstance(cfg, dict) and cfg["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
    assert path.read_text().startswith(f"# accelerate launch --config_file deploy/accelerate/{path.name} ")
    if cfg["distributed_type"] == "FSDP":
        assert cfg["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
        assert cfg["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    companion = (cfg.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if companion:
        import json

        assert json.loads((ROOT / companion).read_text())["zero_optimization"]["stage"] == 3


def test_the_accelerate_configs_cover_ddp_fsdp_zero2_zero3_and_cpu():
    names = {p.name for p in ACCELERATE}
    assert {"ddp.yaml", "fsdp.yaml", "deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "cpu-ddp-2proc.yaml"} <= names
    cpu = yaml.safe_load((ROOT / "deploy" / "accelerate" / "cpu-ddp-2proc.yaml").read_text())
    assert cpu["num_processes"] == 2 and cpu["use_cpu"] is True
