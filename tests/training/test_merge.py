import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from rag.model_card import ModelCard
from training.errors import OutputExists
from training.merge import MergeConfig, run


def test_merged_greedy_output_equals_adapter_on_base(merged_model, qlora_run, tiny_base):
    tok = AutoTokenizer.from_pretrained(merged_model)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Do you offer free shipping?"}],
                                     tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    merged = AutoModelForCausalLM.from_pretrained(merged_model).eval()
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(qlora_run.adapter_dir)).eval()
    base_only = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    kw = {"max_new_tokens": 20, "do_sample": False}
    with torch.no_grad():
        out_m, out_p, out_b = (m.generate(**ids, **kw) for m in (merged, peft, base_only))
    assert torch.equal(out_m, out_p)
    with torch.no_grad():
        assert not torch.allclose(merged(**ids).logits, base_only(**ids).logits), "the adapter changed the model"
    card = ModelCard.read(merged_model)
    assert card.verification.top1_agreement == 1.0


def test_merge_refuses_to_overwrite(merged_model, qlora_run):
    with pytest.raises(OutputExists, match="--force"):
        run(MergeConfig(run=qlora_run.output_dir, out=merged_model))


def test_merge_reports_cosine_and_greedy_agreement(merged_model):
    v = ModelCard.read(merged_model).verification
    assert v.min_logit_cosine > 0.9999 and v.greedy_match == 1.0


def test_dora_merges_and_prefix_is_refused_with_what_to_do(tiny_base, workspace, tmp_path):
    from training.config import TrainConfig
    from training.errors import CannotMerge
    from training.sft import run as sft

    data = workspace / "data" / "sft" / "train.jsonl"
    common = {"max_steps": 2, "batch_size": 2, "report_to": "none", "check_eos": False, "learning_rate": 5e-3}
    dora = sft(TrainConfig(base_model=str(tiny_base), train_file=data, output_dir=tmp_path / "dora", method="dora",
                           **common))
    r = run(MergeConfig(run=dora.output_dir, out=tmp_path / "dora-merged"))
    assert r.top1_agreement >= 0.99 and r.logit_cosine > 0.999 and r.greedy_match == 1.0
    prefix = sft(TrainConfig(base_model=str(tiny_base), train_file=data, output_dir=tmp_path / "prefix",
                             method="prefix", **common))
    with pytest.raises(CannotMerge, match="--method lora"):
        run(MergeConfig(run=prefix.output_dir, out=tmp_path / "prefix-merged"))
    assert not (tmp_path / "prefix-merged").exists()


def test_a_run_that_did_not_finish_is_not_merged_without_force(qlora_run, tmp_path):
    """Issue 11, item 4: an unfinished run's adapter is not the trained model."""
    import shutil

    from training.errors import UnfinishedRun
    from training.record import RunRecord

    run_dir = tmp_path / "run"
    shutil.copytree(qlora_run.output_dir, run_dir, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    record = RunRecord.read(run_dir)
    record.result = None  # as a run killed before it finished leaves it
    record.write(run_dir)
    with pytest.raises(UnfinishedRun, match="never finished.*--resume.*--force"):
        run(MergeConfig(run=run_dir, out=tmp_path / "merged"))
    assert not (tmp_path / "merged").exists()
    assert run(MergeConfig(run=run_dir, out=tmp_path / "merged", force=True)).top1_agreement >= 0.99
