"""One declaration: `onboard train`'s options, the recipe schema and TrainConfig come from the same fields."""

import re

import click
import pytest
import typer

from agent.cli import app
from training.config import METHODS, STAGES, TrainConfig, expected, field_meta, flag_of, recipe_fields
from training.errors import BadConfig
from training.recipes import BadRecipe, keys, load_recipe


def _train_command() -> click.Command:
    return typer.main.get_command(app).commands["train"]


def test_every_field_is_a_flag_with_the_fields_own_help():
    params = {p.name: p for p in _train_command().params}
    for name, f in TrainConfig.model_fields.items():
        if field_meta(name)["flag"] == "":
            assert name not in params, f"{name} is recipe-only"
            continue
        assert name in params, f"TrainConfig.{name} has no option"
        opt = params[name]
        assert flag_of(name) in opt.opts, (name, opt.opts)
        first_words = " ".join((f.description or "").split())[:40]
        assert opt.help.startswith(first_words), (name, opt.help)
    shell = {"workspace", "recipe", "num_processes", "accelerate_config", "verbose"}
    assert set(params) - set(TrainConfig.model_fields) == shell, "no option that is not a field, besides the shell's"


def test_the_help_lists_choices_and_defaults_from_the_config():
    params = {p.name: p for p in _train_command().params}
    assert params["method"].help.endswith("One of: " + " | ".join(METHODS) + ". [default: qlora]")
    assert "One of: " + " | ".join(STAGES) in params["stage"].help
    assert params["learning_rate"].opts == ["--lr", "--learning-rate"]
    assert params["learning_rate"].help == "Learning rate. [default: 0.0002]"
    assert params["gradient_accumulation_steps"].opts == ["--gradient-accumulation-steps", "--grad-accum"]
    assert params["packing"].secondary_opts == ["--no-packing"], "a None default can be turned either way"
    assert "[default: WORKSPACE/data/STAGE/train.jsonl]" in params["train_file"].help


def test_recipe_keys_are_the_configs_fields_and_notes():
    assert set(keys()) == set(recipe_fields()) | {"notes"}
    assert {"train_file", "output_dir", "resume", "force"}.isdisjoint(keys()), "paths and run control stay out"
    assert set(recipe_fields()) < set(TrainConfig.model_fields)


@pytest.mark.parametrize("key,value,words", [
    ("method", "adapters", " | ".join(METHODS)),
    ("beta", 0, "a positive number"),
    ("report_to", "tensorboard,neptune", "a comma-separated list of tensorboard | wandb | mlflow | none"),
    ("max_steps", "many", "an integer"),
])
def test_a_bad_recipe_value_names_the_key_and_the_expected_type(tmp_path, key, value, words):
    f = tmp_path / "r.yaml"
    f.write_text(f"method: lora\nstage: sft\n{key}: {value}\n" if key != "method" else f"method: {value}\nstage: sft\n")
    with pytest.raises(BadRecipe, match=re.escape(f"r.yaml: {key} must be {words}")):
        load_recipe(f)
    assert expected(key) == words


def test_a_bad_value_names_the_flag():
    with pytest.raises(BadConfig, match=r"--lr must be a positive number \(got -1\)"):
        TrainConfig.make(base_model="b", train_file="t.jsonl", output_dir="o", learning_rate=-1)
    with pytest.raises(BadConfig, match="--data is required"):
        TrainConfig.make(base_model="b", output_dir="o")
    with pytest.raises(BadConfig, match="--early-stopping needs an eval file"):
        TrainConfig.make(base_model="b", train_file="t", output_dir="o", early_stopping_patience=2)


def test_lora_alpha_is_twice_the_rank_unless_given():
    base = {"base_model": "b", "train_file": "t.jsonl", "output_dir": "o"}
    assert TrainConfig.make(**base, lora_r=8).lora_alpha == 16
    assert TrainConfig.make(**base, lora_r=8, lora_alpha=8).lora_alpha == 8
    assert TrainConfig.make(**base, report_to="tensorboard,none").report_to == ["tensorboard", "none"]


def test_zero_or_negative_steps_and_epochs_are_refused_not_run():
    base = {"base_model": "b", "train_file": "t.jsonl", "output_dir": "o"}
    with pytest.raises(BadConfig, match="--max-steps must be a positive number of steps, or -1"):
        TrainConfig.make(**base, max_steps=0)
    with pytest.raises(BadConfig, match=r"--epochs must be a positive number \(got -1\)"):
        TrainConfig.make(**base, epochs=-1)
    assert TrainConfig.make(**base, max_steps=-1).max_steps == -1


def test_a_dataset_without_context_chunks_is_refused_at_the_flag(tmp_path):
    from training.data.build import DataBuildConfig

    with pytest.raises(BadConfig, match="--k must be at least 1 .*--no-rag-context"):
        DataBuildConfig(workspace=tmp_path, k=-1)
