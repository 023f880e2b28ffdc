"""Build the embedded default base model: a tiny Llama-style LM trained from scratch on the documents.

The Hub is out of reach, so Onboard makes its own small base: a byte-level BPE tokenizer trained on
the documents, a ChatML template with generation markers, a 4-layer Llama, and a short causal-LM
pre-training on the document text. The result is an ordinary Hugging Face folder, loaded by the same
code path as any real model.

    onboard base build tiny --docs examples/docs --out .onboard/base/tiny
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.io import publish_dir
from rag.model_card import ModelCard
from training.chat_template import CHATML_TEMPLATE, ENDOFTEXT, IM_END, PAD, SPECIAL_TOKENS
from training.io import refuse_overwrite

log = logging.getLogger(__name__)


@dataclass
class TinyConfig:
    """How the tiny base model is built."""

    docs: Path
    """Folder of documents whose text trains the tokenizer and the model."""
    out: Path
    """Output model folder; must not exist unless `force`."""
    vocab_size: int = 4096
    """Upper bound of the BPE vocabulary (a small corpus yields fewer merges)."""
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 704
    max_positions: int = 2048
    """Context length the model accepts (RAG prompts with several chunks need >1k tokens)."""
    steps: int = 300
    """Pre-training optimizer steps (~0.2 s each on 2 CPU cores; the example docs reach loss ~0.25)."""
    seq_len: int = 256
    batch_size: int = 4
    lr: float = 3e-3
    seed: int = 0
    force: bool = False
    """Replace an existing output folder."""

    def __post_init__(self) -> None:
        self.docs, self.out = Path(self.docs), Path(self.out)


@dataclass
class TinyResult:
    out: Path
    parameters: int
    final_loss: float
    """Pre-training loss at the last step (a random init scores about ln(vocab))."""
    seconds: float
    card: ModelCard


def _train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown text
        min_frequency=2,
        show_progress=False,
    )
    # Role names appear in every chat prompt; make sure they get merges.
    tok.train_from_iterator([*texts, "system user assistant\n" * 8], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD, unk_token=None, bos_token=None
    )
    fast.add_special_tokens({"additional_special_tokens": [ENDOFTEXT, "<|im_start|>"]})
    fast.chat_template = CHATML_TEMPLATE
    fast.model_max_length = 1 << 30
    return fast


def _blocks(tokenizer, texts: list[str], seq_len: int):
    """All documents as one token stream (EOT between them), repeated to fill at least one window."""
    import torch

    eot = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer(t, add_special_tokens=False)["input_ids"] + [eot])
    n = max(1, len(ids) // seq_len)
    ids = (ids * math.ceil((n * seq_len + 1) / len(ids)))[: n * seq_len + 1]
    return torch.tensor(ids)


def run(cfg: TinyConfig, progress: Callable[[int, int, float], None] | None = None) -> TinyResult:
    """Build the tiny model into `cfg.out` (weights, tokenizer with its chat template, model card)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from rag.loaders import load_documents

    refuse_overwrite(cfg.out, cfg.force)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    docs = load_documents(cfg.docs).documents
    texts = [d.text for d in docs]
    tokenizer = _train_tokenizer(texts, cfg.vocab_size)

    vocab = math.ceil(len(tokenizer) / 64) * 64  # padded for matmul-friendly shapes
    mcfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(mcfg)

    data = _blocks(tokenizer, texts, cfg.seq_len)
    n_blocks = (len(data) - 1) // cfg.seq_len
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    loss_val = float("nan")
    for step in range(1, cfg.steps + 1):
        # Random windows over the token stream: every offset is a training example.
        starts = torch.randint(0, max(1, len(data) - cfg.seq_len - 1), (cfg.batch_size,), generator=gen)
        x = torch.stack([data[s : s + cfg.seq_len] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss_val = loss.item()
        if progress:
            progress(step, cfg.steps, loss_val)
    model.eval()

    eos = [mcfg.eos_token_id, tokenizer.convert_tokens_to_ids(ENDOFTEXT)]
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    card = ModelCard(
        kind="onboard-tiny",
        description="Tiny Llama-style base model built by Onboard from the documents (not a general LLM).",
        parameters=sum(p.numel() for p in model.parameters()), eos_token_ids=eos,
        provenance={"docs": str(cfg.docs), "docs_sha256": hashlib.sha256("\0".join(texts).encode()).hexdigest(),
                    "pretrain_tokens": n_blocks * cfg.seq_len, "final_loss": round(loss_val, 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}},
    )
    with publish_dir(cfg.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        card.write(tmp)
    log.info("built tiny model in %s: %s", cfg.out, card.provenance)
    return TinyResult(cfg.out, card.parameters, card.provenance["final_loss"], card.provenance["seconds"], card)
