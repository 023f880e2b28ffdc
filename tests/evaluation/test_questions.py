"""The held-out questions: what each system is asked, and the errors that name the bad line."""

from __future__ import annotations

import json

import pytest

from evaluation.errors import NoQuestions
from evaluation.questions import load_questions
from rag.prompt import DEFAULT_SYSTEM, build_rag_messages
from rag.retrieval import Hit


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_question_keeps_its_examples_system_prompt_without_the_baked_in_context(tmp_path):
    hit = Hit(chunk_id="c1", source="refunds.md", heading_path="", text="Refunds take 14 days.", score=1.0)
    rag = build_rag_messages([{"role": "user", "content": "How long do refunds take?"}], [hit])
    assert "Refunds take 14 days." in rag[0]["content"]
    f = _write(tmp_path / "t.jsonl", [
        {"messages": [*rag, {"role": "assistant", "content": "14 days."}], "meta": {"language": "en"}},
        {"messages": [{"role": "user", "content": "退款多久？"}, {"role": "assistant", "content": "14天。"}]}])
    with_rag, plain = load_questions(f)
    # the context is what the +rag systems add: the others must not get it from the example
    assert with_rag.history == [{"role": "system", "content": DEFAULT_SYSTEM}]
    assert with_rag.question == "How long do refunds take?" and with_rag.facts
    assert plain.history == [] and plain.question == "退款多久？"


def test_a_line_that_is_not_json_is_named(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"messages": []}\n{oops\n', encoding="utf-8")
    with pytest.raises(NoQuestions, match=r"t.jsonl:2: not JSON"):
        load_questions(f)


def test_examples_that_teach_declining_are_questions_to_decline_not_to_answer(tmp_path):
    from evaluation.questions import load_declines

    system = {"role": "system", "content": "Answer only from the context.\n\nContext:\n[1] a.md\nShipping is free."}
    rows = [{"messages": [{"role": "user", "content": "How long is the warranty?"},
                          {"role": "assistant", "content": "Two years."}], "meta": {"language": "en"}},
            {"messages": [{"role": "user", "content": "What's the capital of Australia?"},
                          {"role": "assistant", "content": "I'm sorry, I can't find that."}],
             "meta": {"rule": "out-of-domain", "declines": True, "language": "en"}},
            {"messages": [system, {"role": "user", "content": "How long is the warranty?"},
                          {"role": "assistant", "content": "I'm sorry, I can't find that."}],
             "meta": {"rule": "unanswerable", "declines": True, "chunk_id": "c9", "language": "en"}}]
    f = tmp_path / "test.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    assert [q.question for q in load_questions(f)] == ["How long is the warranty?"]
    ood, unanswerable = load_declines(f)
    assert (ood.kind, ood.question, ood.context_messages) == ("out-of-domain", "What's the capital of Australia?", [])
    assert unanswerable.kind == "unanswerable" and unanswerable.context_messages == rows[2]["messages"][:2]
    assert load_declines(tmp_path / "missing.jsonl") == []
