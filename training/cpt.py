"""Continued pre-training: causal LM loss on the documents' own text, packed (TRL SFTTrainer on
`{"text"}` records), with LoRA, QLoRA, DoRA, prefix tuning or a full fine-tune.

    onboard train --stage cpt --data .onboard/data/cpt/train.jsonl --method lora

Reads top to bottom: read the corpus, open the run, load the base for the method, pack the text into
`max_length`-token sequences (no padding wasted), train, save, record the run.
"""

from __future__ import annotations

from training.base_model import load_tokenizer
from training.config import TrainConfig
from training.data.files import read_canonical
from training.runs import RunContext, TrainResult


def read_texts(path) -> list[str]:
    """The text of every record of a CPT dataset (`{"text"}` JSONL, a JSON array, or a .txt file).

    Raises:
        BadDataset: a broken record, or one that is not text (file:line).
    """
    return [r["text"] for r in read_canonical(path, "text")]


def run(cfg: TrainConfig, callbacks: list | None = None) -> TrainResult:
    """Continue pre-training on `cfg.train_file`; save the adapter (or model) to `<output_dir>/adapter`."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    texts = read_texts(cfg.train_file)
    evals = read_texts(cfg.eval_file) if cfg.eval_file else None
    ctx = RunContext.open(cfg, "cpt", examples=len(texts))

    tokenizer = load_tokenizer(ctx.base)
    model = ctx.load_model()
    packing = True if cfg.packing is None else cfg.packing
    # "wrapped": documents are concatenated with EOS between them and cut into max_length blocks, the
    # classic pre-training layout (no padding at all)
    args = SFTConfig(**ctx.trainer_args(model, bool(evals)), dataset_text_field="text", packing=packing,
                     packing_strategy="wrapped", completion_only_loss=False)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": texts}),
        eval_dataset=Dataset.from_dict({"text": evals}) if evals else None, processing_class=tokenizer,
        peft_config=ctx.peft_config(), callbacks=ctx.callbacks(callbacks),
    )
    out = ctx.train(trainer)
    return ctx.finish(trainer, tokenizer, out)
