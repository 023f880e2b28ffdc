"""`onboard data ...` through the real CLI: validate names every bad line, --fix leaves the original
alone, build/preview/stats show what was made and where it came from."""

import json
import time

import pytest
from typer.testing import CliRunner

from agent.cli import app
from tests.training.silent_server import SilentServer
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
    r = runner.invoke(app, ["data", "build", "-w", str(workspace), "--kind", "raft", "--no-teacher", "--force",
                            "--decline-share", "0.5"])
    assert r.exit_code == 0, _out(r)
    assert "by rule" in r.output and "held out (whole documents)" in r.output
    assert "questions: {" in r.output and "'paraphrases'" in r.output and "declines: {" in r.output
    r = runner.invoke(app, ["data", "preview", "-w", str(workspace), "--kind", "raft", "-n", "3"])
    assert r.exit_code == 0, _out(r)
    assert "[1] " in r.output and ".md" in r.output
    png = tmp_path / "lengths.png"
    r = runner.invoke(app, ["data", "stats", "-w", str(workspace), "--kind", "raft", "--png", str(png), "--json",
                               "--base", str(tiny_base)])
    assert r.exit_code == 0, _out(r)
    s = json.loads(r.output)
    assert s["records"] > 10 and set(s["languages"]) == {"en", "zh"} and s["length_unit"] == "tokens"
    assert {"question", "paraphrase", "unanswerable", "out-of-domain"} <= set(s["kinds"]), s["kinds"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_refuses_to_replace_a_dataset_without_force(workspace):
    data = workspace / "data" / "sft"
    before = {f.name: f.read_bytes() for f in data.iterdir()}
    r = runner.invoke(app, ["data", "build", "-w", str(workspace), "--kind", "sft", "--no-teacher"])
    out = _out(r)
    assert r.exit_code == 1 and "Traceback" not in out
    assert f"error: {data} already holds a sft dataset" in out and "--force" in out
    assert {f.name: f.read_bytes() for f in data.iterdir()} == before


@pytest.fixture
def teacher_env(monkeypatch):
    for var in ("ONBOARD_TEACHER_TIMEOUT", "ONBOARD_TEACHER_RETRIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ONBOARD_TEACHER_MODEL", "scripted")
    return monkeypatch


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--teacher-timeout", "0"], {}, "error: --teacher-timeout (ONBOARD_TEACHER_TIMEOUT) must be more than 0 seconds"),
    (["--teacher-retries", "-1"], {}, "error: --teacher-retries (ONBOARD_TEACHER_RETRIES) must be at least 0"),
    ([], {"ONBOARD_TEACHER_TIMEOUT": "soon"}, "error: ONBOARD_TEACHER_TIMEOUT='soon' is not a number"),
    (["--no-teacher", "--teacher-retries", "2"], {}, "error: --teacher-timeout/--teacher-retries given with "
                                                     "--no-teacher"),
])
def test_bad_teacher_settings_are_refused_by_name(tmp_path, teacher_env, args, env, message):
    teacher_env.setenv("ONBOARD_TEACHER_BASE_URL", "http://127.0.0.1:9/v1")
    for var, value in env.items():
        teacher_env.setenv(var, value)
    r = runner.invoke(app, ["data", "build", "-w", str(tmp_path / "ws"), "--kind", "sft", *args])
    assert r.exit_code == 1 and message in _out(r) and "Traceback" not in _out(r)


def test_a_teacher_that_never_answers_stops_the_build_in_seconds(workspace, tmp_path, teacher_env):
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("chroma", "bm25", "ingest.json"):  # the session's index, our own data/
        (ws / name).symlink_to(workspace / name)
    with SilentServer() as server:
        teacher_env.setenv("ONBOARD_TEACHER_BASE_URL", server.url)
        t0 = time.monotonic()
        r = runner.invoke(app, ["data", "build", "-w", str(ws), "--kind", "sft", "--teacher-timeout", "0.5"])
        took = time.monotonic() - t0
        out = _out(r)
        assert r.exit_code == 1 and f"error: teacher at {server.url} has answered nothing" in out, out
        assert "0.5 s" in out and "--teacher-timeout" in out and took < 60
        assert 3 <= server.connections <= 4  # the first round of requests, not (retries + 1) rounds

        # The environment sets the timeout and a flag the retries: one attempt per request, then the error.
        teacher_env.setenv("ONBOARD_TEACHER_TIMEOUT", "0.5")
        r = runner.invoke(app, ["data", "build", "-w", str(ws), "--kind", "sft", "--teacher-retries", "0"])
        assert r.exit_code == 1 and "did not answer within 0.5 s (0 retries)" in _out(r), _out(r)
    assert not (ws / "data" / "sft").exists()  # nothing half-written


@pytest.mark.parametrize("args, named", [
    (["--paraphraser", "llm"], "--paraphraser must be one of auto, rules, teacher, self"),
    (["--paraphraser", "teacher", "--no-teacher"], "--paraphraser teacher but no teacher is configured"),
    (["--paraphraser", "self", "--paraphrases", "0"], "--paraphraser self has nothing to do: --paraphrases is 0"),
])
def test_a_paraphraser_that_cannot_work_is_refused_by_name_before_any_work(tmp_path, args, named):
    r = runner.invoke(app, ["data", "build", "-w", str(tmp_path / "ws"), *args])
    assert r.exit_code == 1 and named in " ".join(_out(r).split()) and "Traceback" not in _out(r)
    assert not (tmp_path / "ws").exists()
