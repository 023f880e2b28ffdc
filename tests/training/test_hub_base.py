"""A Hub id as the base: loaded from the local Hugging Face cache when offline, and the run records
the exact commit it trained on; an uncached id offline is refused with what to do."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.model_card import CARD_FILE
from training.base_model import resolve
from training.errors import ModelNotFound

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(root: Path, model: Path, repo_id: str) -> Path:
    """A Hugging Face cache holding `model` as `repo_id` at COMMIT, laid out as huggingface_hub does."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model, repo / "snapshots" / COMMIT, ignore=shutil.ignore_patterns(CARD_FILE))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return root


def test_a_cached_hub_id_trains_offline_and_the_run_records_its_commit(tmp_path, tiny_base, workspace):
    cache = _hub_cache(tmp_path / "hub", tiny_base, "onboard-test/tiny-shop")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-m", "agent.cli", "train", "-w", str(workspace), "--base",
                        "onboard-test/tiny-shop", "--output", str(out), "--method", "lora", "--max-steps", "2",
                        "--report-to", "none"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    base = json.loads((out / "config.json").read_text())["base_model"]
    assert base == {"name_or_path": "onboard-test/tiny-shop", "source": "hub", "hub_revision": COMMIT}


def test_an_uncached_hub_id_offline_says_how_to_download_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE=0"):
        resolve("onboard-test/not-in-any-cache")
