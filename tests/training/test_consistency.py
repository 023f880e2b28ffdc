"""What training renders is what serving renders; a trained model stops (EOS); templates without
generation markers still train on the answers only, with a warning."""

import json
import logging
import shutil

from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

from serving.engines.hf import TransformersEngine
from training.base_model import load_model, load_tokenizer
from training.sft import check_eos


def _rows(path):
    return [json.loads(x)["messages"] for x in path.read_text().splitlines()]


def test_training_tokens_are_the_served_prompt_plus_the_answer(merged_model, workspace, tmp_path):
    """The ids TRL trains on begin with exactly the ids the server feeds the model for that prompt."""
    messages = _rows(workspace / "data" / "sft" / "train.jsonl")[0]
    tok = load_tokenizer(merged_model)
    trainer = SFTTrainer(model=load_model(merged_model), processing_class=tok,
                         args=SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, max_length=2048,
                                        report_to="none", use_cpu=True),
                         train_dataset=Dataset.from_list([{"messages": messages}]),
                         peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    row = trainer.train_dataset[0]
    trained = [label != -100 for label in row["labels"]]  # TRL folds the assistant mask into the labels
    first_trained = trained.index(True)
    served = TransformersEngine(merged_model)._inputs(messages[:-1])["input_ids"][0].tolist()
    assert row["input_ids"][:first_trained] == served
    answer = tok.decode(row["input_ids"][first_trained:], skip_special_tokens=True)
    assert answer.strip() == messages[-1]["content"].strip()
    trained_ids = [i for i, m in zip(row["input_ids"], trained, strict=True) if m]
    assert trained_ids[-1] == tok.eos_token_id  # the end-of-turn token is trained, so the model learns to stop


def test_eos_check_tells_a_trained_model_from_an_untrained_one(merged_model, tiny_base, workspace, qlora_run):
    messages = _rows(workspace / "data" / "sft" / "train.jsonl")[0]
    assert qlora_run.eos_ok is not None  # checked at the end of every SFT run
    untrained = check_eos(load_model(tiny_base), load_tokenizer(tiny_base), messages, max_new_tokens=32)
    assert untrained is False  # the pre-trained-only base rambles on: the check can fail
    demo_like = check_eos(load_model(merged_model), load_tokenizer(merged_model), messages)
    assert demo_like == qlora_run.eos_ok


def test_template_without_generation_markers_trains_on_the_answer_only(tiny_base, workspace, tmp_path, caplog):
    from training.config import TrainConfig
    from training.sft import run

    base = tmp_path / "plain-template"
    shutil.copytree(tiny_base, base)
    cfg_file = base / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    template = cfg.get("chat_template") or (base / "chat_template.jinja").read_text()
    plain = template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert plain != template
    if "chat_template" in cfg:
        cfg["chat_template"] = plain
        cfg_file.write_text(json.dumps(cfg))
    else:
        (base / "chat_template.jinja").write_text(plain)
    with caplog.at_level(logging.WARNING):
        r = run(TrainConfig(base_model=str(base), train_file=workspace / "data" / "sft" / "train.jsonl",
                            output_dir=tmp_path / "run", method="lora", max_steps=2, batch_size=2, report_to="none",
                            check_eos=False))
    assert "no {% generation %} markers" in caplog.text
    assert r.steps == 2 and (r.adapter_dir / "adapter_model.safetensors").exists()
