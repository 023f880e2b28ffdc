"""One grounded prompt (rag/prompt.py): in the user's language, reworded per workspace, versioned."""

import pytest

from rag.errors import BadContract
from rag.prompt import BUILT_IN, DECLINES, SYSTEM_PROMPTS, build_rag_messages, load_prompts, strip_citations
from rag.retrieval import Hit

HIT = Hit(chunk_id="c1", source="refunds.md", heading_path="Refunds", text="Refunds take 14 days.", score=1.0)


def test_the_question_picks_the_language_of_the_system_prompt_and_a_given_one_wins():
    en = build_rag_messages([{"role": "user", "content": "How long do refunds take?"}], [HIT])
    zh = build_rag_messages([{"role": "user", "content": "退款需要多久？"}], [HIT])
    assert en[0]["content"].startswith(SYSTEM_PROMPTS["en"]) and "[1] refunds.md — Refunds" in en[0]["content"]
    assert zh[0]["content"].startswith(SYSTEM_PROMPTS["zh"])
    for rule in ("[1]", "offer", "language", "repeat"):
        assert rule in SYSTEM_PROMPTS["en"]
    for rule in ("[1]", "人工", "语言", "不要重复"):
        assert rule in SYSTEM_PROMPTS["zh"]
    own = build_rag_messages([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}], [HIT])
    assert own[0]["content"].startswith("Be brief.\n\nContext:")


def test_a_workspace_rewords_the_prompt_and_the_version_follows(tmp_path):
    assert load_prompts(tmp_path) is BUILT_IN and load_prompts(None) is BUILT_IN
    (tmp_path / "prompt.yaml").write_text("system:\n  en: You help Lumen & Oak customers. Cite [n].\n"
                                          "decline:\n  zh: 这个问题我帮您转人工。\n", encoding="utf-8")
    mine = load_prompts(tmp_path)
    assert mine.system == {"en": "You help Lumen & Oak customers. Cite [n].", "zh": SYSTEM_PROMPTS["zh"]}
    assert mine.decline_for("zh") == "这个问题我帮您转人工。" and mine.decline_for("en") == DECLINES["en"]
    assert mine.version != BUILT_IN.version and mine.version.startswith("system-context-v2:")
    assert mine.origin.endswith("prompt.yaml")
    msgs = build_rag_messages([{"role": "user", "content": "Refunds?"}], [HIT], prompts=mine)
    assert msgs[0]["content"].startswith("You help Lumen & Oak customers.")


@pytest.mark.parametrize(("text", "match"), [
    ("tone: friendly\n", r"expected the keys system and decline \(got \['tone'\]\)"),
    ("system:\n  fr: Bonjour\n", "system: expected a map from en/zh.*fr"),
    ("system:\n  en: ''\n", "system: expected a map.*empty"),
    ("system: [en, zh]\n", r"system: expected a map.*\(not a map\)"),
    ("system: {en: [unclosed\n", "cannot read it"),
])
def test_a_bad_prompt_file_is_named_with_what_is_wrong(tmp_path, text, match):
    (tmp_path / "prompt.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(BadContract, match=match) as e:
        load_prompts(tmp_path)
    assert str(tmp_path / "prompt.yaml") in str(e.value)


def test_citation_markers_are_stripped_for_the_text_metrics():
    assert strip_citations("Within 30 days [2]. Refunds take 5 days [1][3].") == "Within 30 days. Refunds take 5 days."
    assert strip_citations("30 天内可退货 [1]") == "30 天内可退货"
    assert strip_citations("Plan [A] costs $5") == "Plan [A] costs $5"
