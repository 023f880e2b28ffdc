"""Truth, not theatre: `onboard eval` must see a fine-tune that helped, and its gate must block one that hurt.

Both cases are real runs of the CLI on the tiny model (train, merge, evaluate):
- helps: the tiny model fine-tuned to memorise the shop's question/answer pairs (facts it cannot know
  otherwise) states more of their key facts than its base, beyond the noise; retrieval finds the source
  chunk of those questions. (base+RAG > base cannot be shown at this size: the tiny base does not read its
  context, it answers with newlines either way; the 0.5B runs in bench/RESULTS.md show what retrieval adds.)
- hurts: that memorising model, then trained on unrelated text until it forgets, is evaluated against it as
  the base: tuned is worse beyond the noise, the gate fails naming the metric and the numbers, and
  `onboard serve` refuses the model.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from agent.cli import app
from evaluation.results import EvalReport

pytestmark = pytest.mark.slow

UNRELATED = [
    "The migration of arctic terns spans both poles; a tern may fly ninety thousand kilometres in a year.",
    "Basalt columns form when thick lava cools slowly and contracts into hexagonal prisms.",
    "In chess, the Sicilian Defence answers the king's pawn with a pawn to the queen's bishop file.",
    "Sourdough rises on wild yeast and lactobacilli kept alive in a starter of flour and water.",
    "A violin's sound post transmits the vibration of the top plate to the back.",
    "Glaciers carve U-shaped valleys, leaving moraines where the ice stops and melts.",
]


def _ok(args: list[str]) -> str:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def memorised(workspace, tiny_base, tmp_path_factory):
    """A workspace whose SFT set has no retrieved context, and the tiny model fine-tuned to memorise it."""
    ws = tmp_path_factory.mktemp("truth") / "ws"
    shutil.copytree(workspace, ws, ignore=shutil.ignore_patterns("runs", "models", "reports", "data"))
    _ok(["data", "build", "-w", str(ws), "--no-rag-context", "--no-teacher", "--base", str(tiny_base)])
    run = ws / "runs" / "memorise"
    # a full fine-tune: LoRA on the tiny base learns too slowly to memorise in a test's time
    _ok(["train", "-w", str(ws), "--base", str(tiny_base), "--method", "full", "--max-steps", "300", "--lr", "3e-3",
         "--batch-size", "4", "--no-eval", "--report-to", "none", "--output", str(run)])
    _ok(["merge", "-w", str(ws), "--run", str(run), "--out", str(ws / "models" / "memorised")])
    return ws, ws / "models" / "memorised"


def _eval(ws, base, model, systems: str, name: str, *extra: str) -> EvalReport:
    _ok(["eval", "-w", str(ws), "--base", str(base), "--model", str(model), "--systems", systems,
         "--questions", str(ws / "data" / "sft" / "train.jsonl"), "--repeats", "0", "--no-edge",
         "--max-new-tokens", "40", "--name", name, *extra])
    return EvalReport.read(ws / "reports" / name / "eval.json")


def _diff(report: EvalReport, a: str, b: str, metric: str = "facts"):
    return next(c for c in report.comparisons if (c.a, c.b, c.metric, c.language) == (a, b, metric, None))


def test_a_fine_tune_that_learned_the_facts_beats_its_base_beyond_the_noise(memorised, tiny_base):
    ws, model = memorised
    report = _eval(ws, tiny_base, model, "base,base+rag,tuned", "helps")
    base, tuned = report.system("base").metrics, report.system("tuned").metrics
    assert base["facts"].mean < 0.1  # it cannot know the shop's numbers and names
    helped = _diff(report, "tuned", "base")
    assert helped.low > 0 and not helped.noise, helped  # a real improvement, not one the questions could fake
    assert tuned["facts"].mean >= base["facts"].mean + 0.15
    assert _diff(report, "tuned", "base", "f1_char").low > 0
    assert report.system("base+rag").metrics["hit_at_k"].mean > 0.6  # retrieval finds the facts' chunks
    md = (ws / "reports" / "helps" / "eval.md").read_text(encoding="utf-8")
    assert "tuned − base on facts" in md and "a real improvement" in md


def test_a_fine_tune_that_forgot_is_blocked_by_the_gate(memorised):
    from tests.serving.servers import free_port

    ws, memo = memorised
    text = ws / "unrelated.jsonl"
    text.write_text("".join(json.dumps({"text": t}) + "\n" for t in UNRELATED * 8), encoding="utf-8")
    run = ws / "runs" / "forget"
    _ok(["train", "-w", str(ws), "--stage", "cpt", "--base", str(memo), "--data", str(text), "--method", "full",
         "--max-steps", "40", "--lr", "3e-3", "--max-length", "128", "--batch-size", "4", "--no-eval",
         "--report-to", "none", "--output", str(run)])
    forgot = ws / "models" / "forgot"
    _ok(["merge", "-w", str(ws), "--run", str(run), "--out", str(forgot)])
    rule = ws / "gate.yaml"
    rule.write_text("candidate: tuned\nbaseline: base\nmetric: facts\n", encoding="utf-8")

    report = _eval(ws, memo, forgot, "base,tuned", "hurts", "--gate", str(rule))
    hurt = _diff(report, "tuned", "base")
    assert hurt.high < 0, hurt  # worse beyond the noise
    assert report.gate is not None and not report.gate.passed
    assert "tuned facts" in report.gate.reasons[0] and "worse beyond the noise" in report.gate.reasons[0]

    r = CliRunner().invoke(app, ["serve", "-w", str(ws), "--model", str(forgot), "--port", str(free_port())])
    assert r.exit_code == 1 and "failed its last evaluation" in r.output and "facts" in r.output
