"""`onboard data ...` through the real CLI: validate names every bad line, --fix leaves the original
alone, build/preview/stats show what was made and where it came from."""

import json

from typer.testing import CliRunner

from agent.cli import app
from training.data.formats import file_sha256

runner = CliRunner()
GOOD = {"messages": [{"role": "user", "content": "Do you ship to Canada?"},
                     {"role": "assistant", "content": "Yes, in 7 to 14 business days."}]}


def _out(r) -> str:
    return r.output + (getattr(r, "stderr", "") or "")


def test_validate_names_each_bad_line_and_fix_writes_a_clean_copy(tmp_path, tiny_base):
    f = tmp_path / "mine.jsonl"
    long = {"messages": [{"role": "user", "content": "word " * 3000}, {"role": "assistant", "content": "ok"}]}
    f.write_text("\n".join([
        json.dumps(GOOD),
        '{"messages": [broken',
        json.dumps({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}),
        json.dumps(GOOD),
        json.dumps(long),
    ]) + "\n")
    before = file_sha256(f)
    r = runner.invoke(app, ["data", "validate", str(f), "--base", str(tiny_base)])
    out = _out(r)
    assert r.exit_code == 1 and "Traceback" not in out
    assert f"{f}:2: broken-json" in out and f"{f}:3: unknown-role" in out
    assert f"{f}:4: duplicate" in out and "line 1" in out and f"{f}:5: too-long" in out

    r = runner.invoke(app, ["data", "validate", str(f), "--fix", "--base", str(tiny_base)])
    assert r.exit_code == 0, _out(r)
    fixed = tmp_path / "mine.fixed.jsonl"
    assert [json.loads(x) for x in fixed.read_text().splitlines()] == [GOOD]
    assert file_sha256(f) == before  # the original is untouched


def test_validate_says_when_a_file_is_not_jsonl_at_all(tmp_path):
    f = tmp_path / "faq.csv"
    f.write_text("question,answer\nDo you ship?,Yes\n")
    r = runner.invoke(app, ["data", "validate", str(f), "-w", str(tmp_path)])
    assert r.exit_code == 1 and "not JSONL" in _out(r) and "Traceback" not in _out(r)


def test_build_preview_and_stats(workspace, tmp_path, tiny_base):
    r = runner.invoke(app, ["data", "build", "-w", str(workspace), "--kind", "raft", "--no-teacher"])
    assert r.exit_code == 0, _out(r)
    assert "by rule" in r.output and "held out (whole documents)" in r.output
    r = runner.invoke(app, ["data", "preview", "-w", str(workspace), "--kind", "raft", "-n", "3"])
    assert r.exit_code == 0, _out(r)
    assert "[1] " in r.output and ".md" in r.output
    png = tmp_path / "lengths.png"
    r = runner.invoke(app, ["data", "stats", "-w", str(workspace), "--kind", "raft", "--png", str(png), "--json",
                               "--base", str(tiny_base)])
    assert r.exit_code == 0, _out(r)
    s = json.loads(r.output)
    assert s["records"] > 10 and set(s["languages"]) == {"en", "zh"} and s["length_unit"] == "tokens"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
