"""Scoring answers into the report: per language when the questions are in more than one, and the gate
judging over all questions (never a single language's comparison)."""

from __future__ import annotations

from evaluation.gate import GateRule, apply_gate
from evaluation.questions import Question
from evaluation.report import write_report
from evaluation.results import Answer, Provenance
from evaluation.score import score

EN = [("How long do refunds take?", "Refunds take 14 days."),
      ("What does shipping cost?", "Shipping costs 5 euros."),
      ("How long is the warranty?", "The warranty lasts 2 years."),
      ("When is support open?", "Support is open from 9 to 17.")]
ZH = [("退款多久到账？", "退款14天内到账。"),
      ("运费多少？", "运费是5欧元。"),
      ("保修多久？", "保修期为2年。"),
      ("客服几点上班？", "客服9点到17点在线。")]


def _questions() -> list[Question]:
    from evaluation.metrics.facts import key_facts

    return [Question(id=f"{lang}{i}", question=q, reference=r, language=lang, facts=key_facts(r))
            for lang, pairs in (("en", EN), ("zh", ZH)) for i, (q, r) in enumerate(pairs)]


def _answers(questions: list[Question]) -> dict:
    """base knows nothing; tuned repeats every reference (English and Chinese alike)."""
    out = {}
    for q in questions:
        for system, text in (("base", "I am not sure." if q.language == "en" else "我不确定。"),
                             ("tuned", q.reference)):
            a = Answer(system=system, kind="question", item=q.id, text=text, total_s=0.5, ttft_s=0.1)
            out[a.key] = a
    return out


def _report():
    qs = _questions()
    prov = Provenance(base_model="b", test_file="t.jsonl", test_sha256="0" * 64, questions=len(qs))
    return score(qs, [], _answers(qs), ("base", "tuned"), prov, created="2026-01-01T00:00:00+00:00")


def test_each_language_gets_its_own_scores_and_paired_differences(tmp_path):
    report = _report()
    tuned = report.system("tuned")
    assert set(tuned.by_language) == {"en", "zh"}
    assert tuned.by_language["zh"]["facts"].mean == 1.0 and tuned.by_language["zh"]["facts"].n == 4
    assert report.system("base").by_language["en"]["facts"].mean == 0.0
    per_lang = {(c.language, c.metric): c for c in report.comparisons if c.language}
    assert per_lang[("zh", "facts")].diff == 1.0 and per_lang[("en", "facts")].diff == 1.0
    overall = [c for c in report.comparisons if c.language is None and c.metric == "facts"]
    assert len(overall) == 1 and overall[0].a == "tuned" and overall[0].b == "base"
    write_report(report, tmp_path)
    md = (tmp_path / "eval.md").read_text(encoding="utf-8")
    assert "### By language" in md and "zh: 4 questions" in md and "en: 4 questions" in md
    assert "zh questions only:" in md and "tuned − base on facts: +100.0 points" in md


def test_one_language_has_no_breakdown():
    qs = [q for q in _questions() if q.language == "en"]
    prov = Provenance(base_model="b", test_file="t.jsonl", test_sha256="0" * 64, questions=len(qs))
    report = score(qs, [], _answers(qs), ("base", "tuned"), prov, created="2026-01-01T00:00:00+00:00")
    assert all(not s.by_language for s in report.systems)
    assert all(c.language is None for c in report.comparisons)


def test_the_gate_judges_over_all_questions_not_one_language():
    report = _report()
    # make the Chinese comparison a decline: the gate must still read the overall one (an improvement)
    report.comparisons = [c.model_copy(update={"diff": -1.0, "low": -1.0, "high": -0.5})
                          if c.language == "zh" else c for c in report.comparisons]
    result = apply_gate(report, GateRule(candidate="tuned", baseline="base"))
    assert result.passed and "better beyond the noise" in result.reasons[0]


def test_echoes_citing_the_source_and_declining_are_scored_per_system(tmp_path):
    from evaluation.questions import DeclineQuestion

    qs = [Question(id="q1", question="How long do refunds take to arrive?", reference="Refunds take 14 days.",
                   chunk_id="c-refund"),
          Question(id="q2", question="运费是多少钱呢？", reference="运费是5欧元。", chunk_id="c-ship")]
    declines = [DeclineQuestion(id="d1", question="Will it rain tomorrow?", kind="out-of-domain"),
                DeclineQuestion(id="d2", question="明天天气怎么样？", kind="out-of-domain"),
                DeclineQuestion(id="d3", question="How long do refunds take?", kind="unanswerable")]
    texts = {"echo": ["How long do refunds take to arrive? Please see the policy [1].", "运费是多少钱呢？"],
             "good": ["Refunds take 14 days [2].", "运费是5欧元 [1]。"]}
    said = {"echo": ["It will be sunny.", "明天晴天。", "Refunds take 14 days."],
            "good": ["Sorry, I can't find that; shall I put you through to a member of our team?",
                     "抱歉，资料里没有这个答案，需要为您转接人工客服吗？", "Refunds take 14 days."]}
    answers = {}
    for system in ("echo", "good"):
        for q, t in zip(qs, texts[system], strict=True):
            a = Answer(system=system, kind="question", item=q.id, text=t, total_s=0.5,
                       retrieved=["c-other", q.chunk_id], contexts=["other", q.reference])
            answers[a.key] = a
        for d, t in zip(declines, said[system], strict=True):
            a = Answer(system=system, kind="decline", item=d.id, text=t, total_s=0.5)
            answers[a.key] = a
    prov = Provenance(base_model="b", test_file="t.jsonl", test_sha256="0" * 64, questions=len(qs))
    report = score(qs, [], answers, ("echo", "good"), prov, created="2026-01-01T00:00:00+00:00", declines=declines)
    echo, good = report.system("echo"), report.system("good")
    assert (echo.echo_rate, good.echo_rate) == (1.0, 0.0)
    # the source is retrieved second: "[2]" cites it, "[1]" cites the other chunk
    assert (echo.metrics["cites_source"].mean, good.metrics["cites_source"].mean) == (0.0, 0.5)
    assert (echo.decline_rate, round(good.decline_rate, 3)) == (0.0, 0.667)
    assert good.decline_by_kind == {"out-of-domain": 1.0, "unanswerable": 0.0}
    md = write_report(report, tmp_path)["eval.md"].read_text()
    assert "echo rate (lower is better)" in md and "declined, out-of-domain" in md
