"""A collection name Chroma would refuse is refused at the flag, before anything is written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agent.cli import app
from rag import RagConfig
from rag.errors import BadRagOption

runner = CliRunner()


REFUSED = ["../../x", "ab", "a b c", "a..b", "1.2.3.4", "-shop", "shop_", "中文", "x" * 64]
ACCEPTED = ["onboard", "shop-docs", "v1.2_docs", "x" * 63]


def test_only_names_chroma_accepts_are_allowed(tmp_path):
    for name in REFUSED:
        with pytest.raises(BadRagOption, match="--collection .*3-63 letters, digits"):
            RagConfig(workspace=tmp_path, collection=name)
    for name in ACCEPTED:
        assert RagConfig(workspace=tmp_path, collection=name).collection == name


@pytest.mark.parametrize("verb", [["ingest", "DOCS"], ["search", "returns"]])
def test_the_cli_refuses_it_in_one_line_and_writes_nothing(tmp_path, verb):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\ntext\n")
    args = [str(docs) if a == "DOCS" else a for a in verb]
    r = runner.invoke(app, [*args, "-w", str(tmp_path / "ws"), "--collection", "../../x"])
    assert r.exit_code == 1, r.output
    [line] = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert line.startswith("error: --collection '../../x': not a valid collection name") and "e.g. shop-docs" in line
    assert not (tmp_path / "ws").exists() and not (tmp_path / "x").exists()
