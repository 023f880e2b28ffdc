"""Shared fixtures: one tiny base model, one ingested workspace and one short QLoRA run per session.

Everything is real (Chroma, bitsandbytes 4-bit, TRL, uvicorn) and tiny, so the suite runs on 2 CPU cores.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DOCS = ROOT / "examples" / "docs"


def pytest_configure(config):
    import torch

    torch.set_num_threads(int(os.environ.get("ONBOARD_THREADS", "2")))


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def docs_dir(tmp_path_factory) -> Path:
    """A private copy of the example shop documents."""
    d = tmp_path_factory.mktemp("docs") / "docs"
    shutil.copytree(EXAMPLE_DOCS, d)
    return d


@pytest.fixture(scope="session")
def embedder():
    from rag.embeddings import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, docs_dir) -> Path:
    """The tiny base model, briefly pre-trained (enough to be a real model, not to be good)."""
    from training.tiny import TinyConfig, run

    out = tmp_path_factory.mktemp("base") / "tiny"
    run(TinyConfig(docs=docs_dir, out=out, steps=60))
    return out


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, docs_dir, embedder) -> Path:
    """A workspace with the documents ingested and the SFT dataset built."""
    from rag import RagConfig, ingest
    from training.data.build import DataBuildConfig
    from training.data.build import run as build
    from training.data.rules import RULES

    ws = tmp_path_factory.mktemp("ws")
    ingest(RagConfig(workspace=ws), docs_dir, embedder=embedder)
    build(DataBuildConfig(workspace=ws, rules=RULES))  # the shop's documents are policies: every rule
    # Tests rebuild the workspace's datasets with other options; the shared QLoRA run trains on this
    # first build whichever test asks for it first, so the models it yields do not depend on test order.
    shutil.copytree(ws / "data" / "sft", _sft_as_built(tmp_path_factory))
    return ws


def _sft_as_built(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "sft-as-built"


@pytest.fixture(scope="session")
def qlora_run(tmp_path_factory, tiny_base, workspace):
    """A short real QLoRA run on the tiny model."""
    from training.sft import SFTRunConfig, run

    out = tmp_path_factory.mktemp("runs") / "sft"
    data = _sft_as_built(tmp_path_factory)
    cfg = SFTRunConfig(base_model=str(tiny_base), train_file=data / "train.jsonl", eval_file=data / "test.jsonl",
                       output_dir=out, method="qlora", max_steps=12, learning_rate=2e-3, batch_size=4, save_steps=6)
    return run(cfg)


@pytest.fixture(scope="session")
def merged_model(tmp_path_factory, qlora_run) -> Path:
    from training.merge import MergeConfig, run

    out = tmp_path_factory.mktemp("models") / "merged"
    run(MergeConfig(run=qlora_run.output_dir, out=out))
    return out
