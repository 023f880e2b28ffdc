"""The compact LM head (training/lm_head.py) computes what TRL's fused head computes: the same loss,
gradients and metrics, scoring only the labelled positions."""

import pytest
import torch

from training import lm_head
from training.config import TrainConfig
from training.data.files import read_messages_file
from training.runs import RunContext


def _trainer(tiny_base, workspace, tmp_path, method="lora"):
    from trl import SFTConfig, SFTTrainer

    from training.base_model import load_tokenizer
    from training.sft import _dataset

    cfg = TrainConfig(base_model=tiny_base, train_file=workspace / "data" / "sft" / "train.jsonl",
                      output_dir=tmp_path, method=method, report_to="none", batch_size=4)
    rows = read_messages_file(cfg.train_file)[:8]
    ctx = RunContext.open(cfg, "sft", examples=len(rows))
    model = ctx.load_model()
    args = SFTConfig(**ctx.trainer_args(model, False), assistant_only_loss=False)
    return SFTTrainer(model=model, args=args, train_dataset=_dataset(rows, False),
                      processing_class=load_tokenizer(str(tiny_base)), peft_config=ctx.peft_config())


def _step(trainer, batch):
    """Loss, metrics and trainable-parameter gradients of one fused forward+backward."""
    model = trainer.model
    model.zero_grad()
    torch.manual_seed(0)  # the same LoRA dropout masks on both sides
    out = model(**batch, fused_lm_head=True)
    (-out.log_probs.sum() / out.label_mask.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out, grads


@pytest.mark.parametrize("method,chunk", [("lora", None), ("lora", 7), ("full", 7)])
def test_compact_head_matches_trl(tiny_base, workspace, tmp_path, monkeypatch, method, chunk):
    torch.manual_seed(0)
    trainer = _trainer(tiny_base, workspace, tmp_path, method)
    batch = next(iter(trainer.get_train_dataloader()))
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(trainer.model.get_base_model() if method == "lora" else trainer.model,
                      outputs=lm_head.FIELDS)  # TRL's head with every field DPO may ask for
    mask = batch["labels"][:, 1:] != -100
    assert 0 < mask.sum() < mask.numel() / 2, "answers are a minority of the positions"
    trl_out, trl_grads = _step(trainer, batch)

    assert lm_head.compact_lm_head(trainer.model)
    if chunk:  # several chunks (for full: recomputed in backward)
        monkeypatch.setattr(lm_head, "CHUNK", chunk)
    seen = []
    monkeypatch.setattr(lm_head, "score", lambda h, *a, f=lm_head.score: seen.append(len(h)) or f(h, *a))
    out, grads = _step(trainer, batch)

    assert seen == [mask.sum()], "only the labelled positions were projected"
    assert torch.equal(out.label_mask, trl_out.label_mask)
    torch.testing.assert_close(out.log_probs, trl_out.log_probs, rtol=1e-4, atol=1e-5)
    for field in ("entropy", "mean_logits", "log_sum_sq_probs"):
        torch.testing.assert_close(getattr(out, field), getattr(trl_out, field), rtol=1e-4, atol=1e-4, msg=field)
    assert torch.equal(out.is_top1, trl_out.is_top1)
    assert grads.keys() == trl_grads.keys() and any(g.abs().sum() > 0 for g in grads.values())
    for name in grads:
        torch.testing.assert_close(grads[name], trl_grads[name], rtol=1e-3, atol=1e-6, msg=name)


def test_generation_is_untouched(tiny_base, workspace, tmp_path):
    trainer = _trainer(tiny_base, workspace, tmp_path)
    model = trainer.model
    ids = torch.tensor([[1, 2, 3, 4]])
    model.eval()
    before = model.generate(input_ids=ids, max_new_tokens=5, do_sample=False)
    assert lm_head.compact_lm_head(trainer.model)
    after = model.generate(input_ids=ids, max_new_tokens=5, do_sample=False)
    assert torch.equal(before, after)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_no_labelled_position_gives_a_differentiable_zero(requires_grad):
    hidden = torch.randn(0, 8, requires_grad=True)
    weight = torch.randn(50, 8, requires_grad=requires_grad)
    fields = lm_head.score(hidden, weight, None, torch.zeros(0, dtype=torch.long))
    assert len(fields) == len(lm_head.FIELDS) and all(f.shape == (0,) for f in fields)
    (-fields[0].sum()).backward()
    assert hidden.grad is not None and hidden.grad.shape == (0, 8)
