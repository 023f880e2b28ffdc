"""The optional LLM judge, against a scripted OpenAI-compatible judge over real HTTP (no model)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from evaluation.errors import EvaluationError
from evaluation.judge import (
    BadJudge,
    JudgeConfig,
    JudgeFailed,
    judge,
    load_prompt,
    parse_reply,
    prompt_version,
    render,
    summarise,
)
from evaluation.judge_summary import spearman
from evaluation.metrics.facts import key_facts
from evaluation.questions import Question
from evaluation.results import Answer, JudgeScore
from evaluation.score import per_question
from tests.evaluation.judge_server import JudgeServer, Script
from tests.serving.servers import free_port


def Q(qid: str, question: str, reference: str, language: str = "en") -> Question:
    return Question(id=qid, question=question, reference=reference, language=language, facts=key_facts(reference))


def A(system: str, q: Question, text: str, contexts: tuple[str, ...] = ()) -> Answer:
    return Answer(system=system, kind="question", item=q.id, text=text, total_s=0.1, contexts=list(contexts),
                  sources=[f"doc{i}.md" for i, _ in enumerate(contexts, 1)])


REFUND = Q("refund-en", "How long do refunds take?", "Refunds arrive within 5 business days; shipping over $75 is free.")
RETURNS = Q("returns-en", "How long do I have to return an item?", "Returns are accepted within 30 days of delivery.")
REFUND_ZH = Q("refund-zh", "退款多久到账？", "退款会在 3 个工作日内到账。", "zh")
SHIP = Q("ship-en", "Who delivers my order, and how fast?", "Orders ship with DHL in 2 days.")
DOCS = ("Refunds take 5 business days. Shipping over $75 is free.", "Returns are accepted within 30 days.",
        "退款会在 3 个工作日内到账。", "We ship with DHL.")

ITEMS = [  # (system, question, answer), and the correctness the scripted judge gives (1 + 4 x fact recall)
    ("base+rag", REFUND, A("base+rag", REFUND, "Refunds take 5 business days, and shipping over $75 is free [1].", DOCS)),
    ("base+rag", RETURNS, A("base+rag", RETURNS, "Returns are accepted within 30 days [2].", DOCS)),
    ("base+rag", REFUND_ZH, A("base+rag", REFUND_ZH, "退款会在 3 个工作日内到账。", DOCS)),
    ("base+rag", SHIP, A("base+rag", SHIP, "Our courier is DHL; it takes a while.", DOCS)),
    ("base", REFUND, A("base", REFUND, "Refunds take 10 business days.")),
    ("base", RETURNS, A("base", RETURNS, "You can return within 30 days, whatever.")),
    ("base", REFUND_ZH, A("base", REFUND_ZH, "退款一般需要 7 个工作日。")),
    ("base", SHIP, A("base", SHIP, "Orders ship with DHL in 2 days.")),
]
CORRECTNESS = [5, 5, 5, 3, 1, 5, 1, 5]


def cfg(url: str, **kw) -> JudgeConfig:
    return JudgeConfig(base_url=url, model="scripted", **{"max_retries": 2, **kw})


def rules(items=ITEMS) -> dict:
    out: dict = {}
    for system, q, a in items:
        out.setdefault(system, {})[q.id] = per_question(q, a)
    return out


def test_english_and_chinese_answers_are_scored_and_summarised_per_system(tmp_path):
    seen = []
    with JudgeServer(Script(reply_style="cycle")) as server:  # bare JSON, ```json fence, after a preamble
        scores = judge(cfg(server.url), ITEMS, tmp_path / "judge.jsonl", progress=lambda d, t: seen.append((d, t)))

    assert [(s.system, s.item) for s in scores] == [(s, q.id) for s, q, _ in ITEMS]
    assert all(s.ok for s in scores) and [s.correctness for s in scores] == CORRECTNESS
    assert [s.tone for s in scores] == [5, 5, 5, 5, 5, 1, 5, 5]  # "whatever": sarcasm
    assert [s.faithfulness for s in scores[:4]] == [5, 5, 5, 2] and {s.faithfulness for s in scores[4:]} == {5}
    assert scores[0].reason == "2 key facts, recall 1.00"
    assert seen[-1] == (8, 8) and len(server.script.requests) == 8
    assert {r["temperature"] for r in server.script.requests} == {0}
    zh = next(r for r in server.script.requests if r["question"] == "退款多久到账？")
    assert "<reference>\n退款会在 3 个工作日内到账。\n</reference>" in zh["prompt"]
    assert zh["answer"] in ("退款会在 3 个工作日内到账。", "退款一般需要 7 个工作日。")

    summary = summarise(scores, rules(), cfg(server.url))
    assert summary.model == "scripted" and summary.prompt_version == prompt_version()
    assert [s.name for s in summary.systems] == ["base+rag", "base"]
    rag, base = summary.system("base+rag"), summary.system("base")
    assert rag.scored == base.scored == 4 and rag.failed == base.failed == 0
    assert rag.scores["correctness"].mean == pytest.approx(4.5) and base.scores["correctness"].mean == pytest.approx(3)
    assert base.scores["tone"].mean == pytest.approx(4) and rag.scores["faithfulness"].mean == pytest.approx(4.25)
    for s in summary.systems:
        for interval in s.scores.values():
            assert interval.n == 4 and 1 <= interval.low <= interval.mean <= interval.high <= 5
    assert base.scores["correctness"].low < base.scores["correctness"].high  # the answers differ: a real interval


def test_concurrency_is_bounded(tmp_path):
    with JudgeServer(Script(delay_s=0.2)) as server:
        scores = judge(cfg(server.url, concurrency=2), ITEMS)
    assert all(s.ok for s in scores) and server.script.max_in_flight == 2


def test_garbage_and_out_of_range_replies_are_failures_with_reasons_never_scores(tmp_path):
    items = [*ITEMS[:2], ("base", SHIP, A("base", SHIP, "GARBAGE in, garbage out.")),
             ("base", RETURNS, A("base", RETURNS, "OUTOFRANGE: 30 days."))]
    with JudgeServer() as server:
        scores = judge(cfg(server.url), items, tmp_path / "judge.jsonl")
        assert [s.ok for s in scores] == [True, True, False, False]
        garbage, out_of_range = scores[2], scores[3]
        assert garbage.correctness is garbage.faithfulness is garbage.tone is None
        assert "no JSON object with correctness, faithfulness and tone" in garbage.error
        assert out_of_range.correctness is None and "correctness=7 is outside 1-5" in out_of_range.error

        summary = summarise(scores, rules(items), cfg(server.url))
        base = summary.system("base")
        assert (base.scored, base.failed) == (0, 2) and base.scores == {} and base.agreement.facts.n == 0
        assert any(f.startswith("ship-en: unreadable reply") for f in base.failures)
        assert summary.system("base+rag").scored == 2

        # Unreadable replies are not cached: a rerun asks for them again, and only for them.
        server.script.requests.clear()
        judge(cfg(server.url), items, tmp_path / "judge.jsonl")
        assert sorted(r["answer"] for r in server.script.requests) == ["GARBAGE in, garbage out.",
                                                                      "OUTOFRANGE: 30 days."]


@pytest.mark.parametrize("status", [429, 500])
def test_rate_limits_and_server_errors_are_retried_then_succeed(status):
    with JudgeServer(Script(fail_first=2, fail_status=status)) as server:
        scores = judge(cfg(server.url, concurrency=1), ITEMS[:2])
    assert all(s.ok for s in scores) and [s.correctness for s in scores] == [5, 5]
    assert [r["status"] for r in server.script.requests] == [status, status, 200, 200]


def test_an_answer_still_failing_after_retries_is_a_failure_and_the_run_goes_on():
    with JudgeServer(Script(fail_first=3, fail_status=503)) as server:
        scores = judge(cfg(server.url, concurrency=1), ITEMS[:2])
    assert not scores[0].ok and scores[0].error.startswith("HTTP 503 after 2 retries")
    assert scores[1].ok and scores[1].correctness == 5


def test_a_rejected_key_fails_fast_naming_the_url_and_never_the_key(caplog):
    secret = "sk-wrong-SECRET-4242"
    caplog.set_level(logging.DEBUG)
    with JudgeServer(Script(api_key="right-key")) as server:
        with pytest.raises(JudgeFailed) as e:
            judge(cfg(server.url, api_key=secret, concurrency=1), ITEMS)
        assert isinstance(e.value, EvaluationError)
        assert [r["status"] for r in server.script.requests] == [401]  # no retries, no other answers
        assert server.script.requests[0]["authorization"] == f"Bearer {secret}"  # the server did echo it back
        message = str(e.value)
        assert server.url in message and "HTTP 401" in message and "ONBOARD_JUDGE_API_KEY" in message
        assert secret not in message and secret not in caplog.text
        assert secret not in repr(cfg(server.url, api_key=secret)) and secret not in cfg(
            server.url, api_key=secret).model_dump_json()

        assert judge(cfg(server.url, api_key="right-key"), ITEMS[:1])[0].ok


def test_an_unreachable_judge_fails_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(JudgeFailed, match=re.escape(f"judge at {url} is unreachable")):
        judge(cfg(url, max_retries=0), ITEMS[:2])


def test_a_judge_that_never_answers_stops_the_run():
    with JudgeServer(Script(delay_s=1)) as server:
        with pytest.raises(JudgeFailed, match="answered nothing: its first 3 attempts each timed out after 0.2 s"):
            judge(cfg(server.url, timeout_s=0.2, max_retries=5, concurrency=1), ITEMS[:1])
        assert len(server.script.requests) == 3


def test_a_rerun_uses_the_cache_and_judges_only_what_changed(tmp_path):
    cache = tmp_path / "reports" / "run" / "judge.jsonl"
    with JudgeServer() as server:
        first = judge(cfg(server.url), ITEMS, cache)
        assert len(server.script.requests) == 8 and len(cache.read_text(encoding="utf-8").splitlines()) == 8

        server.script.requests.clear()
        assert judge(cfg(server.url), ITEMS, cache) == first and server.script.requests == []

        changed = list(ITEMS)
        changed[4] = ("base", REFUND, A("base", REFUND, "Refunds take 5 business days; over $75 ships free."))
        again = judge(cfg(server.url), changed, cache)
        assert [r["answer"] for r in server.script.requests] == [changed[4][2].text]
        assert again[4].correctness == 5 and again[:4] == first[:4]

        server.script.requests.clear()  # another judge model: its own scores
        judge(JudgeConfig(base_url=server.url, model="other-judge"), ITEMS[:2], cache)
        assert len(server.script.requests) == 2


def test_a_torn_last_cache_line_is_dropped_and_its_answer_judged_again(tmp_path):
    cache = tmp_path / "judge.jsonl"
    with JudgeServer() as server:
        judge(cfg(server.url, concurrency=1), ITEMS[:3], cache)
        lines = cache.read_text(encoding="utf-8").splitlines()
        torn = json.loads(lines[-1])
        cache.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")

        server.script.requests.clear()
        scores = judge(cfg(server.url), ITEMS[:3], cache)
    assert all(s.ok for s in scores) and len(server.script.requests) == 1
    assert server.script.requests[0]["question"] == next(q.question for _, q, _ in ITEMS if q.id == torn["item"])
    rows = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]  # every line whole
    assert len(rows) == 3


@pytest.mark.parametrize("reverse", [False, True])
def test_agreement_with_the_rule_metrics(reverse):
    with JudgeServer(Script(reverse=reverse)) as server:
        scores = judge(cfg(server.url), ITEMS)
    agreement = summarise(scores, rules(), cfg(server.url)).agreement
    assert agreement.facts.n == agreement.f1_char.n == agreement.pass_n == 8
    if reverse:  # the judge ranks answers against key-fact recall
        assert agreement.facts.rho == pytest.approx(-1) and agreement.pass_rate == 0
        assert agreement.f1_char.rho < 0
    else:
        assert agreement.facts.rho == pytest.approx(1)
        assert agreement.pass_rate == pytest.approx(7 / 8)  # the half-right answer: judge 3 fails, facts 0.5 passes
        assert agreement.f1_char.rho > 0.3


def test_spearman():
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 - 6 x 2 / (4 x 15)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)  # average ranks for the tie
    assert spearman([10, 20, 30], [3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 2], [1, 2]) is None  # too few to rank
    assert spearman([3, 3, 3, 3], [1, 2, 3, 4]) is None  # a constant side has no ranking
    with pytest.raises(ValueError, match="paired"):
        spearman([1, 2, 3], [1, 2])


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    x = [5, 3, 3, 1, 4, 5, 2, 1, 3, 5]
    y = [0.9, 0.4, 0.5, 0.0, 0.5, 1.0, 0.2, 0.1, 0.5, 0.7]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


@pytest.mark.parametrize("reply", [
    '{"correctness": 4, "faithfulness": 5, "tone": 3, "reason": "ok"}',
    '```json\n{"correctness": 4, "faithfulness": 5, "tone": 3, "reason": "ok"}\n```',
    'Grading {"as asked"}.\nFinal: {"correctness": 4.0, "faithfulness": "5", "tone": 3, "reason": "ok"} Thanks!',
    'The form is {"correctness": 1, "faithfulness": 1, "tone": 1}; mine: {"correctness": 4, "faithfulness": 5, '
    '"tone": 3, "reason": "ok"}',
    '<think>{"correctness": 1, "faithfulness": 1, "tone": 1}</think>{"correctness": 4, "faithfulness": 5, "tone": 3,'
    ' "reason": "ok"}',
])
def test_replies_are_read_in_any_wrapping(reply):
    assert parse_reply(reply) == ({"correctness": 4, "faithfulness": 5, "tone": 3}, "ok")


@pytest.mark.parametrize("reply, why", [
    ('{"correctness": 4, "faithfulness": 5}', "tone missing"),
    ('{"correctness": 0, "faithfulness": 5, "tone": 3}', "correctness=0 is outside 1-5"),
    ('{"correctness": 3.5, "faithfulness": 5, "tone": 3}', "correctness=3.5 is not a whole number"),
    ('{"correctness": true, "faithfulness": 5, "tone": 3}', "correctness=True is not a whole number"),
    ('{"correctness": "4/5", "faithfulness": 5, "tone": 3}', "correctness='4/5' is not a whole number"),
    ("Correctness: 4, faithfulness: 5, tone: 3.", "no JSON object"),
    ("", "no JSON object"),
])
def test_unreadable_replies_say_why(reply, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_reply(reply)


def test_the_prompt_numbers_the_sources_and_keeps_the_answer_verbatim():
    prompt = render(RETURNS, A("base+rag", RETURNS, "Use {sources} and {\"json\": 1} [2].", DOCS[:2]))
    assert '<answer>\nUse {sources} and {"json": 1} [2].\n</answer>' in prompt
    assert f"<sources>\n[1] (doc1.md) {DOCS[0]}\n\n[2] (doc2.md) {DOCS[1]}\n</sources>" in prompt
    assert "<sources>\n(none)\n</sources>" in render(RETURNS, A("base", RETURNS, "30 days."))
    assert f"<reference>\n{RETURNS.reference}\n</reference>" in prompt
    template = load_prompt()
    assert not template.startswith("<!--") and all(f"{{{k}}}" in template for k in ("question", "reference",
                                                                                      "sources", "answer"))
    assert '"correctness"' in template and "whatever the language" in template
    assert re.fullmatch(r"v1-[0-9a-f]{8}", prompt_version())


@pytest.fixture
def env(monkeypatch):
    for var in ("BASE_URL", "MODEL", "API_KEY", "TIMEOUT"):
        monkeypatch.delenv(f"ONBOARD_JUDGE_{var}", raising=False)
    return monkeypatch


def test_from_env(env):
    assert JudgeConfig.from_env() is None
    env.setenv("ONBOARD_JUDGE_BASE_URL", "http://judge.local/v1")
    with pytest.raises(BadJudge, match="ONBOARD_JUDGE_MODEL is not"):
        JudgeConfig.from_env()
    env.setenv("ONBOARD_JUDGE_MODEL", "qwen-72b")
    env.setenv("ONBOARD_JUDGE_API_KEY", "sk-env-SECRET")
    env.setenv("ONBOARD_JUDGE_TIMEOUT", "30")
    c = JudgeConfig.from_env()
    assert (c.base_url, c.model, c.timeout_s, c.max_retries, c.concurrency) == ("http://judge.local/v1", "qwen-72b",
                                                                               30, 2, 4)
    assert c.api_key.get_secret_value() == "sk-env-SECRET" and "sk-env-SECRET" not in repr(c) + str(c)
    for bad in ("soon", "0", "nan"):
        env.setenv("ONBOARD_JUDGE_TIMEOUT", bad)
        with pytest.raises(BadJudge, match=f"ONBOARD_JUDGE_TIMEOUT='{bad}'"):
            JudgeConfig.from_env()
    env.setenv("ONBOARD_JUDGE_BASE_URL", "judge.local")
    with pytest.raises(BadJudge, match="not an http"):
        JudgeConfig.from_env()


def test_scores_are_whole_numbers_from_1_to_5():
    assert JudgeScore(system="base", item="x", error="boom").ok is False
    with pytest.raises(ValueError):
        JudgeScore(system="base", item="x", correctness=6, faithfulness=5, tone=5)
