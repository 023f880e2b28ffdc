"""Grounding: is an answer supported by its context, in English and Chinese (no model, no network)."""

import pytest

from rag.grounding import (
    check_grounded,
    content_tokens,
    is_grounded,
    is_refusal,
    quotes_found,
    support,
)

EN = "Refunds reach your card within 10 working days. Return shipping costs $5.95 unless the item is faulty."
ZH = "退款会在检验后 5 至 10 个工作日内退回原支付方式。下单后 1 小时内可以免费取消订单。"


def test_support_is_the_share_of_content_words_in_the_context():
    assert support("Within 10 working days, to your card.", EN) == 1.0
    assert support("It takes 45 days by cheque.", EN) == pytest.approx(1 / 4)  # days found; takes, 45, cheque not
    assert support("The fee is $5.95.", EN) == pytest.approx(1 / 2)  # 5.95 is one token; fee is not in EN
    assert support("", EN) == 0.0 and support("it is the", EN) == 0.0  # nothing to support


def test_chinese_is_compared_by_character_bigrams():
    assert content_tokens("工作日内") == {"工作", "作日", "日内"}
    assert support("10 个工作日内退回。", ZH) == 1.0
    assert support("需要 45 天，以支票寄出。", ZH) == 0.0
    assert 0 < support("退款需要 10 个工作日。", ZH) < 1


def test_quotes_match_across_case_punctuation_and_width_and_must_all_be_found():
    assert quotes_found(["refunds reach your card, within 10 WORKING-days"], EN)
    assert quotes_found(["下单后１小时内可以免费取消订单"], ZH)  # full-width digit
    assert not quotes_found([], EN)
    assert not quotes_found(["Refunds reach your card", "by cheque"], EN)  # one invented quote spoils all
    assert not quotes_found(["the"], EN)  # too short to prove anything


@pytest.mark.parametrize("answer", ["I cannot answer this from the context.", "The context does not mention it.",
                                    "无法根据内容回答。", "文中没有提到运费。"])
def test_refusals_in_both_languages_are_never_grounded(answer):
    assert is_refusal(answer)
    assert not is_grounded(answer, EN + ZH, quotes=["Refunds reach your card"])


def test_is_grounded_by_quotes_or_by_support():
    assert is_grounded("Ten days.", EN, quotes=["Refunds reach your card within 10 working days"])
    assert is_grounded("Within 10 working days.", EN)
    assert not is_grounded("Within 10 working days by cheque.", EN, min_support=0.9)
    assert not is_grounded("It takes 45 days by cheque.", EN)
    assert is_grounded("检验后 10 个工作日内退回。", ZH)
    assert not is_grounded("需要 45 天，以支票寄出。", ZH)
    assert not is_grounded("   ", EN)


def test_check_grounded_names_the_reason_and_always_reports_support():
    assert check_grounded("", ["Refunds reach your card"], EN) == ("empty-answer", 0.0)
    why, score = check_grounded("It takes 45 days by cheque.", [], EN)
    assert why == "not-grounded" and score == pytest.approx(0.25)
    assert check_grounded("Within 10 working days.", [], EN, min_support=0.0)[0] is None
    assert check_grounded("it is the", [], EN, min_support=0.0)[0] == "not-grounded"  # no content at all
