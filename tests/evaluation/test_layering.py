"""evaluation sits between serving and agent: it may import rag and serving, never training or agent,
and importing its metrics loads nothing heavy (no torch, jieba or sacrebleu until a metric needs them)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_evaluation_never_imports_training_or_agent():
    files = sorted((ROOT / "evaluation").rglob("*.py"))
    assert files
    for f in files:
        bad = _imported_packages(f) & {"training", "agent"}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}: evaluation may import rag and serving only"


def test_importing_the_metrics_is_light():
    code = (
        "import sys\n"
        "import evaluation.metrics.text, evaluation.metrics.facts, evaluation.metrics.retrieval\n"
        "print(sorted(m for m in ('torch', 'jieba', 'sacrebleu', 'training') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
