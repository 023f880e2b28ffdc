"""The teacher LLM client, against a scripted OpenAI-compatible server over real HTTP (no model)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests.training.silent_server import SilentServer
from tests.training.teacher_server import Script, TeacherServer
from training.data.teacher import (
    FAIL_FAST_TIMEOUTS,
    PROMPT_FILES,
    TeacherConfig,
    check_grounded,
    generate,
    load_prompt,
    parse_answer,
    parse_questions,
)
from training.errors import BadConfig, TeacherError

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


@dataclass
class C:
    """A chunk as far as the teacher cares."""

    id: str
    text: str


EN = [
    C("en-returns", "Items can be returned within 30 days of delivery. Returned items must be unused and in the "
                    "original box. Refunds reach your card within 10 working days."),
    C("en-warranty", "All sofas carry a 5-year warranty on the frame. The warranty does not cover fabric wear."),
]
ZH = [
    C("zh-refund", "退款会在检验后 5 至 10 个工作日内退回原支付方式。下单后 1 小时内可以免费取消订单。"),
    C("zh-ship", "标准运费为 15 元。订单满 300 元包邮。"),
]


def cfg(url: str, **kw) -> TeacherConfig:
    kw = {"model": "scripted", "questions_per_chunk": 2, "concurrency": 2, "max_retries": 1, "timeout_s": 5} | kw
    return TeacherConfig(base_url=url, **kw)


@pytest.fixture
def server():
    with TeacherServer() as s:
        yield s


def test_questions_and_grounded_answers_in_english_and_chinese(server, tmp_path):
    result = generate(EN + ZH, cfg(server.url), tmp_path / "cache.jsonl")

    assert result.dropped == {} and result.chunks_generated == 4 and result.chunks_from_cache == 0
    assert [i.chunk_id for i in result.items] == ["en-returns"] * 2 + ["en-warranty"] * 2 + ["zh-refund"] * 2 + ["zh-ship"] * 2
    by_id = {c.id: c.text for c in EN + ZH}
    for item in result.items:
        assert item.grounded and item.why_dropped is None and item.model == "scripted"
        assert item.quote in by_id[item.chunk_id] and item.answer in by_id[item.chunk_id]
        assert item.raft.startswith("##Reason:") and "##begin_quote##" in item.reason
    en, zh = result.items[0], result.items[4]
    assert en.language == "en" and en.question == "What does the policy say about Items can be returned?"
    assert en.answer == "Items can be returned within 30 days of delivery."
    # The Chinese reply was a header line plus three numbered questions: header dropped, capped at two.
    assert zh.language == "zh" and zh.question == "关于“退款会在检验”，有什么规定？"
    assert result.items[5].question == "关于“下单后 1 ”，有什么规定？"

    # Each request used the prompt in the chunk's language: one questions call and two answer calls per chunk.
    assert result.requests == len(server.script.requests) == 12
    heads = {(k, lang): load_prompt(k, lang)[:30] for k in ("questions", "answer") for lang in ("en", "zh")}
    for r in server.script.requests:
        lang = "zh" if r["context"] in (c.text for c in ZH) else "en"
        assert r["prompt"].startswith(heads[(r["kind"], lang)])
    assert sorted(r["kind"] for r in server.script.requests) == ["answer"] * 8 + ["questions"] * 4


def test_ungrounded_and_refused_answers_are_dropped_with_a_reason(server, tmp_path):
    chunks = [EN[0], C("made-up", "UNGROUNDED. Our store opens at nine."), C("refused", "NOANSWER. 标准运费为 15 元。")]
    result = generate(chunks, cfg(server.url), tmp_path / "cache.jsonl")

    assert {i.chunk_id for i in result.items} == {"en-returns"}
    assert result.dropped == {"not-grounded": 2, "cannot-answer": 2}
    assert result.summary()["kept"] == 2 and json.dumps(result.summary())
    made_up = [i for i in result.dropped_items if i.chunk_id == "made-up"]
    assert [i.why_dropped for i in made_up] == ["not-grounded"] * 2
    assert not made_up[0].grounded and made_up[0].support < 0.6


def test_grounding_rules():
    chunk = "Refunds reach your card within 10 working days.\n退款会在检验后 5 至 10 个工作日内退回。"
    # Quotes match across case, whitespace and punctuation changes.
    assert check_grounded("Ten days.", ["refunds reach your card, within 10 working-days"], chunk, 0.6)[0] is None
    # No usable quote: enough of the answer's words (or Chinese bigrams) must be in the chunk.
    assert check_grounded("Within 10 working days, to your card.", [], chunk, 0.6)[0] is None
    assert check_grounded("检验后 10 个工作日内退回。", ["退款在检验后退回"], chunk, 0.6)[0] is None
    assert check_grounded("It takes 45 days by cheque in the post.", [], chunk, 0.6)[0] == "not-grounded"
    assert check_grounded("需要 45 天，以支票寄出。", [], chunk, 0.6)[0] == "not-grounded"
    assert check_grounded("", ["Refunds reach your card"], chunk, 0.6)[0] == "empty-answer"
    assert check_grounded("The context does not mention it.", [], chunk, 0.6)[0] == "cannot-answer"
    assert check_grounded("无法根据内容回答。", [], chunk, 0.6)[0] == "cannot-answer"
    assert check_grounded("I cannot answer this from the context.", [], chunk, 0.6)[0] == "cannot-answer"


def test_parsing_is_forgiving():
    reply = "<think>let me see</think>Sure! Here you go:\n1. How long is the warranty?\n- Who pays shipping?\nThanks."
    assert parse_questions(reply, 5) == ["How long is the warranty?", "Who pays shipping?"]
    assert parse_questions('```json\n["A?", "Is it free?", {"question": "Who pays?"}, "Not one"]\n```', 5) == [
        "Is it free?", "Who pays?"]
    assert parse_questions("（1）运费是多少？\n问题2：可以退货吗？", 1) == ["运费是多少？"]
    assert parse_answer("##Reason: r ##begin_quote## q1 ##end_quote## ##begin_quote##q2##end_quote##\n##Answer: a") == (
        "r ##begin_quote## q1 ##end_quote## ##begin_quote##q2##end_quote##", ["q1", "q2"], "a")
    assert parse_answer("Just an answer.") == ("", [], "Just an answer.")


@pytest.mark.parametrize("status", [500, 429])
def test_transient_failures_are_retried_and_the_run_succeeds(tmp_path, status):
    with TeacherServer(Script(fail_first=3, fail_status=status)) as server:
        result = generate(EN, cfg(server.url, concurrency=1, max_retries=4), tmp_path / "cache.jsonl")
    assert len(result.items) == 4 and result.requests == 6
    assert [r["status"] for r in server.script.requests] == [status] * 3 + [200] * 6


def test_a_server_that_keeps_failing_raises_teacher_error_naming_the_url(tmp_path):
    with TeacherServer(Script(fail_first=10**6)) as server:
        with pytest.raises(TeacherError, match="HTTP 500 after 1 retries") as e:
            generate(EN, cfg(server.url), tmp_path / "cache.jsonl")
    assert server.url in str(e.value)
    assert not (tmp_path / "cache.jsonl").read_text()  # nothing finished, nothing cached


def test_an_unreachable_server_raises_teacher_error_naming_the_url(tmp_path):
    with TeacherServer() as s:  # take a free port, then stop listening on it
        url = s.url
    t0 = time.monotonic()
    with pytest.raises(TeacherError, match="unreachable") as e:
        generate(EN, cfg(url), tmp_path / "cache.jsonl")
    assert url in str(e.value) and "ONBOARD_TEACHER_BASE_URL" in str(e.value)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_teacher_that_never_answers_fails_fast_naming_the_url_and_the_timeout(tmp_path, concurrency):
    """It accepts connections and reads the requests, but never replies: with 4 retries of a 0.5 s timeout,
    each request alone would take about 10 s before failing; the run stops after FAIL_FAST_TIMEOUTS."""
    with SilentServer() as server:
        t0 = time.monotonic()
        with pytest.raises(TeacherError, match="has answered nothing") as e:
            generate(EN + ZH, cfg(server.url, timeout_s=0.5, max_retries=4, concurrency=concurrency),
                     tmp_path / "cache.jsonl")
        took = time.monotonic() - t0
    msg = str(e.value)
    assert server.url in msg and "0.5 s" in msg and "ONBOARD_TEACHER_TIMEOUT" in msg and "\n" not in msg
    # 3 timeouts and two backoffs (about 3 s), or one round of 4 (0.5 s), against 5 attempts and 7.5 s of backoff
    # per request without the fail-fast; the margin is for a loaded machine.
    assert took < (8 if concurrency == 1 else 5), took
    assert server.connections == (FAIL_FAST_TIMEOUTS if concurrency == 1 else 4)


def test_timeout_and_retries_come_from_the_environment_and_bad_values_are_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("ONBOARD_TEACHER_BASE_URL", "http://teacher:8000/v1")
    monkeypatch.setenv("ONBOARD_TEACHER_MODEL", "big-model")
    monkeypatch.setenv("ONBOARD_TEACHER_TIMEOUT", "0.5")
    monkeypatch.setenv("ONBOARD_TEACHER_RETRIES", "0")
    c = TeacherConfig.from_env()
    assert (c.timeout_s, c.max_retries) == (0.5, 0)
    c = TeacherConfig.from_env(timeout_s=7.0, max_retries=None)  # a flag wins; an unset flag leaves the env
    assert (c.timeout_s, c.max_retries) == (7.0, 0)

    for var, value, message in [
        ("ONBOARD_TEACHER_TIMEOUT", "soon", "ONBOARD_TEACHER_TIMEOUT='soon' is not a number"),
        ("ONBOARD_TEACHER_TIMEOUT", "0", r"--teacher-timeout \(ONBOARD_TEACHER_TIMEOUT\) must be more than 0"),
        ("ONBOARD_TEACHER_TIMEOUT", "nan", r"--teacher-timeout \(ONBOARD_TEACHER_TIMEOUT\) must be more than 0"),
        ("ONBOARD_TEACHER_RETRIES", "1.5", "ONBOARD_TEACHER_RETRIES='1.5' is not a whole number"),
        ("ONBOARD_TEACHER_RETRIES", "-1", r"--teacher-retries \(ONBOARD_TEACHER_RETRIES\) must be at least 0"),
    ]:
        with monkeypatch.context() as m:
            m.setenv(var, value)
            with pytest.raises(BadConfig, match=message):
                TeacherConfig.from_env()
    with pytest.raises(BadConfig, match=r"--teacher-timeout \(ONBOARD_TEACHER_TIMEOUT\) must be more than 0"):
        TeacherConfig.from_env(timeout_s=-1.0)
    monkeypatch.delenv("ONBOARD_TEACHER_BASE_URL")
    with pytest.raises(BadConfig, match="--teacher-retries set but no teacher is configured"):
        TeacherConfig.from_env(max_retries=2)

    # Honoured: no retries and a 0.5 s timeout give one attempt, failing at once.
    with SilentServer() as server:
        t0 = time.monotonic()
        with pytest.raises(TeacherError, match=r"did not answer within 0.5 s \(0 retries\)"):
            generate(EN, cfg(server.url, timeout_s=0.5, max_retries=0, concurrency=1), tmp_path / "cache.jsonl")
        assert time.monotonic() - t0 < 3 and server.connections == 1


def test_a_wrong_api_key_is_named_and_never_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with TeacherServer(Script(api_key="right-key")) as server:
        with pytest.raises(TeacherError, match="ONBOARD_TEACHER_API_KEY") as e:
            generate(EN, cfg(server.url, api_key="sk-wrong-secret"), tmp_path / "cache.jsonl")
        assert "401" in str(e.value) and server.url in str(e.value)
        assert "sk-wrong-secret" not in str(e.value) + caplog.text + repr(cfg(server.url, api_key="sk-wrong-secret"))
        assert len(generate(EN, cfg(server.url, api_key="right-key"), tmp_path / "ok.jsonl").items) == 4


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_limit_is_respected(tmp_path, limit):
    chunks = [C(f"c{i}", f"Rule {i} applies to order type {i}. It was added in year {2000 + i}.") for i in range(6)]
    with TeacherServer(Script(delay_s=0.05)) as server:
        result = generate(chunks, cfg(server.url, concurrency=limit), tmp_path / "cache.jsonl")
    assert server.script.max_in_flight == limit
    assert [i.chunk_id for i in result.items] == [c.id for c in chunks for _ in range(2)]  # input order


def test_config_from_env(monkeypatch):
    for var in ("ONBOARD_TEACHER_BASE_URL", "ONBOARD_TEACHER_MODEL", "ONBOARD_TEACHER_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert TeacherConfig.from_env() is None
    monkeypatch.setenv("ONBOARD_TEACHER_BASE_URL", "http://teacher:8000/v1")
    with pytest.raises(TeacherError, match="ONBOARD_TEACHER_MODEL"):
        TeacherConfig.from_env()
    monkeypatch.setenv("ONBOARD_TEACHER_MODEL", "big-model")
    monkeypatch.setenv("ONBOARD_TEACHER_API_KEY", "sk-secret")
    c = TeacherConfig.from_env(questions_per_chunk=3, concurrency=None)
    assert (c.base_url, c.model, c.api_key, c.questions_per_chunk, c.concurrency) == (
        "http://teacher:8000/v1", "big-model", "sk-secret", 3, 4)
    assert "sk-secret" not in repr(c)
    with pytest.raises(ValueError, match="concurrency"):
        TeacherConfig.from_env(concurrency=0)


def test_prompts_are_packaged_and_have_their_placeholders():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "prompts/*.txt" in data["training"]
    for name in PROMPT_FILES:
        kind, lang = name.removesuffix(".txt").split("_")
        text = load_prompt(kind, lang)
        assert "{context}" in text and ("{n}" in text if kind == "questions" else "{question}" in text)


DRIVER = """
import json, sys
from types import SimpleNamespace
from training.data.teacher import TeacherConfig, generate
url, chunks, cache = sys.argv[1:]
chunks = [SimpleNamespace(**c) for c in json.load(open(chunks))]
generate(chunks, TeacherConfig(base_url=url, model="scripted", concurrency=2, max_retries=0), cache)
"""


def _many_chunks() -> list[C]:
    en = [C(f"en{i}", f"Store {i} opens at {8 + i} am. Parking at store {i} is free for {i + 1} hours.") for i in range(4)]
    zh = [C(f"zh{i}", f"第{i}号门店早上{8 + i}点开门。门店停车免费{i + 1}小时。") for i in range(4)]
    return [c for pair in zip(en, zh, strict=True) for c in pair]


def test_a_killed_run_resumes_where_it_stopped(server, tmp_path):
    chunks, cache = _many_chunks(), tmp_path / "cache.jsonl"
    (tmp_path / "chunks.json").write_text(json.dumps([asdict(c) for c in chunks]))
    server.script.delay_s = 0.2  # slow, so the kill lands mid-run
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, server.url, str(tmp_path / "chunks.json"), str(cache)],
                            cwd=ROOT, env=env)
    deadline = time.monotonic() + 40
    while len(server.script.requests) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"

    done = {json.loads(line)["chunk_id"] for line in cache.read_text().splitlines()}
    assert 0 < len(done) < len(chunks)
    server.script.delay_s = 0
    server.script.reset()
    result = generate(chunks, cfg(server.url), cache)

    assert (result.chunks_from_cache, result.chunks_generated) == (len(done), len(chunks) - len(done))
    todo = {c.text for c in chunks if c.id not in done}
    assert {r["context"] for r in server.script.requests} == todo  # only unfinished chunks were asked for
    assert len(server.script.requests) == result.requests == 3 * len(todo)
    reference = generate(chunks, cfg(server.url), tmp_path / "uninterrupted.jsonl")
    assert [asdict(i) for i in result.items] == [asdict(i) for i in reference.items]
    assert len(result.items) == 2 * len(chunks)


def test_a_torn_last_line_is_ignored_and_settings_changes_redo_the_work(server, tmp_path):
    cache = tmp_path / "cache.jsonl"
    first = generate(EN, cfg(server.url), cache)
    with cache.open("a") as f:
        f.write('{"v": 1, "chunk_id": "en-ret')  # a crash mid-write
    server.script.reset()
    again = generate(EN + ZH[:1], cfg(server.url), cache)
    assert again.chunks_from_cache == 2 and again.requests == 3  # only the new chunk
    assert again.items[:4] == first.items
    lines = cache.read_text().splitlines()
    assert json.loads(lines[-1])["chunk_id"] == "zh-refund"  # written on a line of its own
    server.script.reset()
    changed = generate(EN, cfg(server.url, questions_per_chunk=1), cache)
    assert changed.chunks_from_cache == 0 and changed.requests == 4 and len(changed.items) == 2
