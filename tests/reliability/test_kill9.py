"""kill -9 at random points of merge and data build, then a re-run: never a half-written result, nothing
of the user's lost, and the re-run gives what one clean run gives. (Ingest and training have their own
kill -9 tests in tests/rag/test_ingest_robustness.py and tests/training/test_resume.py; the repeated,
random-point variants here, and the merge kills, are `slow`, to keep the default run under 20 minutes.)

The points are drawn from a seeded generator: set ONBOARD_FAULT_SEED to replay a failure (every
assertion message carries the seed)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("ONBOARD_FAULT_SEED") or random.SystemRandom().randrange(10**6))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _onboard(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", *args]


def _run(argv: list[str]) -> float:
    """Run to the end; the seconds it took."""
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{argv}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return time.monotonic() - t0


def _kill(argv: list[str], when, must: bool = True) -> bool:
    """Start `argv`; SIGKILL it as soon as `when(elapsed seconds)` is true. Whether it was killed; fails if
    it ended first, unless not `must`."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while proc.poll() is None and not when(time.monotonic() - t0):
        time.sleep(0.01)
    if proc.poll() is not None:
        assert not must, f"it ended before the kill point (seed {SEED}); rerun with ONBOARD_FAULT_SEED={SEED}"
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return True


def _digest(folder: Path, names: tuple[str, ...]) -> dict[str, str | None]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() if (folder / n).exists() else None
            for n in names}


def _weights(model: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model / "model.safetensors")


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


# ---- merge

@pytest.mark.slow  # 80 s: the default run keeps the data-build kill and the publish test below
def test_merge_killed_at_a_random_point_or_while_writing_leaves_nothing_half_written(qlora_run, tmp_path):
    merge = _onboard("merge", "--run", str(qlora_run.output_dir), "--out")
    clean = tmp_path / "clean"
    took = _run([*merge, str(clean)])

    out = tmp_path / "merged"
    at = random.Random(SEED).uniform(0.3, 0.95) * took
    _kill([*merge, str(out)], lambda t: t >= at)
    if out.exists():  # the kill came after the rename: the result must be whole
        assert _same_weights(out, clean), f"seed {SEED}"
    else:
        _run([*merge, str(out)])  # the leftover temporary folder does not block the re-run
    assert _same_weights(out, clean) and not out.with_name("merged.tmp").exists(), f"seed {SEED}"

    # killed while the new model is being written, replacing the previous one: the previous one survives
    tmp = out.with_name("merged.tmp")
    _kill([*merge, str(out), "--force"], lambda t: tmp.exists() and any(tmp.iterdir()))
    assert _same_weights(out, clean) or _same_weights(out.with_name("merged.old"), clean)
    _run([*merge, str(out), "--force"])
    assert _same_weights(out, clean)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "merged"]


def test_a_kill_between_the_two_renames_of_a_publish_loses_neither_model(tmp_path):
    """The one moment `publish_dir` has no folder under the real name: the next publish restores it."""
    from rag.io import publish_dir

    out = tmp_path / "model"
    with publish_dir(out) as d:
        (d / "weights").write_text("v1")
    out.rename(tmp_path / "model.old")  # as a kill after moving the old one aside leaves it
    (tmp_path / "model.tmp").mkdir()
    (tmp_path / "model.tmp" / "weights").write_text("v2, half")
    with pytest.raises(RuntimeError):
        with publish_dir(out) as d:
            assert (out / "weights").read_text() == "v1"  # restored before anything else happens
            raise RuntimeError("the next merge fails")
    assert (out / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


# ---- data build

DATASET = ("train.jsonl", "test.jsonl")


def test_data_build_killed_at_a_random_point_keeps_the_old_dataset_or_writes_the_whole_new_one(workspace,
                                                                                                tmp_path):
    ws, ref = tmp_path / "ws", tmp_path / "ref"
    for w in (ws, ref):
        shutil.copytree(workspace, w, ignore=shutil.ignore_patterns("runs", "models"))
    build = ("data", "build", "--k", "2", "--force", "--no-teacher")
    took = _run(_onboard(*build, "-w", str(ref)))
    data = ws / "data" / "sft"
    old, new = _digest(data, DATASET), _digest(ref / "data" / "sft", DATASET)
    assert old != new and None not in old.values()

    at = random.Random(SEED + 1).uniform(0.2, 0.98) * took
    _kill(_onboard(*build, "-w", str(ws)), lambda t: t >= at)
    assert _digest(data, DATASET) in (old, new), f"a mix of two builds (seed {SEED})"
    _run(_onboard(*build, "-w", str(ws)))
    assert _digest(data, DATASET) == new, f"seed {SEED}"
    assert {p.name for p in data.iterdir() if not p.name.startswith(".")} == {*DATASET, "stats.json"}


# ---- ingest and training, at random points (slow: the fixed-point versions run by default)

@pytest.mark.slow
def test_ingest_killed_at_random_points_then_rerun_equals_one_clean_run(tmp_path):
    from rag import RagConfig
    from tests.rag.test_ingest_robustness import _many_docs, _snapshot

    docs = _many_docs(tmp_path / "docs", 120)
    took = _run(_onboard("ingest", str(docs), "-w", str(tmp_path / "clean")))
    rng = random.Random(SEED + 2)
    for i in range(3):  # killed up to three times, each at its own point (a later run has less left to do)
        at = rng.uniform(0.3, 0.95) * took
        if not _kill(_onboard("ingest", str(docs), "-w", str(tmp_path / "killed")), lambda t, at=at: t >= at,
                     must=i == 0):
            break
    _run(_onboard("ingest", str(docs), "-w", str(tmp_path / "killed")))
    assert _snapshot(RagConfig(workspace=tmp_path / "killed")) == _snapshot(RagConfig(workspace=tmp_path / "clean")), \
        f"seed {SEED}"


@pytest.mark.slow
def test_training_killed_at_a_random_point_resumes_to_the_end(tmp_path, tiny_base, workspace):
    from tests.training.test_resume import STEPS, _cmd, _losses
    from training.record import RunRecord

    data = workspace / "data" / "sft" / "train.jsonl"
    took = _run(_cmd(tmp_path, tiny_base, data, tmp_path / "clean"))
    run = tmp_path / "killed"
    at = random.Random(SEED + 3).uniform(0.3, 0.95) * took
    _kill(_cmd(tmp_path, tiny_base, data, run), lambda t: t >= at)
    resumed = _cmd(tmp_path, tiny_base, data, run, "--resume")
    if not list(run.glob("checkpoints/checkpoint-*")):  # killed before the first checkpoint: start again
        resumed = _cmd(tmp_path, tiny_base, data, run, "--force")
    _run(resumed)
    assert max(_losses(run)) == STEPS and (run / "adapter" / "adapter_model.safetensors").exists(), f"seed {SEED}"
    result = RunRecord.read(run).result
    assert result is not None and result.stopped_by is None and result.steps == STEPS, f"seed {SEED}"
