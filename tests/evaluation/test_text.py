"""Text metrics: token F1, exact match, ROUGE-L, BLEU and chrF, in English and Chinese."""

import pytest

from evaluation.metrics.text import (
    bleu,
    chrf,
    exact_match,
    is_short,
    rouge_l,
    sentence_bleu,
    sentence_chrf,
    token_f1,
    tokenize,
)

ZH_REF = "退款会在三个工作日内退回原支付方式"
ZH_GOOD = "退款将于三个工作日内退回到原来的支付方式"  # a correct paraphrase
ZH_BAD = "退货需要在三十天内寄回仓库"  # wrong: another policy

EN_REFS = ["Refunds reach your card within 10 working days of receiving the item.",
           "Shipping is free on orders over 75 dollars."]
EN_PARA = ["Your refund reaches your card within 10 working days after we receive the item.",
           "Orders over 75 dollars ship for free."]
EN_BAD = ["Our office is closed on public holidays.", "Please contact the support team by email."]
ZH_REFS = ["退款会在收到商品后 10 个工作日内退回您的银行卡。", "订单满 75 元免运费。"]
ZH_PARA = ["收到商品后，退款将在 10 个工作日内退回到您的银行卡。", "订单金额满 75 元即可免运费。"]
ZH_BADS = ["我们的办公室在法定节假日休息。", "请通过电子邮件联系客服团队。"]


def test_english_is_lowercased_words_without_punctuation_or_articles():
    assert tokenize("The fee is $5.95! Don't wait.") == ["fee", "is", "5.95", "dont", "wait"]
    assert tokenize("Ｏｐｅｎ at 14:00, 1,000 items") == ["open", "at", "14:00", "1,000", "items"]


def test_chinese_is_split_by_character_or_by_jieba_word_and_mixed_text_keeps_both():
    text = "退款 3 个工作日内到账，用PayPal付款。"
    chars = tokenize(text, "char")
    assert chars[:4] == ["退", "款", "3", "个"] and "paypal" in chars and "，" not in chars
    words = tokenize(text, "word")
    assert "退款" in words and "付款" in words and "paypal" in words and len(words) < len(chars)
    with pytest.raises(ValueError, match="mode"):
        tokenize(text, "bpe")


@pytest.mark.parametrize("mode", ["char", "word"])
def test_a_correct_chinese_paraphrase_beats_a_wrong_answer(mode):
    assert token_f1(ZH_GOOD, ZH_REF, mode) > token_f1(ZH_BAD, ZH_REF, mode) + 0.3
    assert rouge_l(ZH_GOOD, ZH_REF, mode) > rouge_l(ZH_BAD, ZH_REF, mode) + 0.3


def test_token_f1_is_squad_f1():
    assert token_f1("refunds take 10 days", "refunds take 10 days") == 1.0
    # 2 shared tokens: precision 2/4, recall 2/3 -> F1 4/7
    assert token_f1("refunds take ten days", "refunds take 10") == pytest.approx(4 / 7)
    assert token_f1("hello", "goodbye") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "x") == 0.0


def test_exact_match_ignores_case_punctuation_spaces_and_width_and_short_references_are_flagged():
    assert exact_match("Thirty days.", "thirty  days") == 1.0
    assert exact_match("30天", "30 天") == 1.0 and exact_match("３０ 天", "30 天") == 1.0
    assert exact_match("31 days", "30 days") == 0.0
    assert is_short("30 days") and is_short("3 个工作日")
    assert not is_short("Refunds arrive within five business days of receiving the returned item")
    assert not is_short("退款会在收到退回商品后的三个工作日内退回原支付方式")


def test_rouge_l_is_one_for_identical_zero_for_disjoint_and_rewards_order():
    assert rouge_l("refunds take ten days", "refunds take ten days") == 1.0
    assert rouge_l("退款需要十天", "退款需要十天") == 1.0
    assert rouge_l("refunds take ten days", "shipping is free") == 0.0
    assert rouge_l("退款需要十天", "运费全免") == 0.0
    # Same tokens, reversed order: F1 is 1, ROUGE-L (longest common subsequence = 1 token of 4) is not.
    assert token_f1("days ten take refunds", "refunds take ten days") == 1.0
    assert rouge_l("days ten take refunds", "refunds take ten days") == pytest.approx(0.25)


@pytest.mark.parametrize("refs,para,bad", [(EN_REFS, EN_PARA, EN_BAD), (ZH_REFS, ZH_PARA, ZH_BADS)], ids=["en", "zh"])
def test_bleu_and_chrf_rank_identical_over_paraphrase_over_unrelated(refs, para, bad):
    assert bleu(refs, refs) == pytest.approx(1.0)
    assert bleu(refs, refs) > bleu(para, refs) > bleu(bad, refs) + 0.2
    assert chrf(refs, refs) == pytest.approx(1.0)
    assert chrf(refs, refs) > chrf(para, refs) > chrf(bad, refs) + 0.2
    for r, p, b in zip(refs, para, bad, strict=True):
        assert sentence_bleu(r, r) == pytest.approx(1.0) and sentence_bleu(p, r) > sentence_bleu(b, r)
        assert sentence_chrf(r, r) == pytest.approx(1.0) and sentence_chrf(p, r) > sentence_chrf(b, r)


def test_chinese_bleu_uses_the_zh_tokenizer():
    # With the default 13a tokenizer an unspaced Chinese sentence is one token, and one changed
    # character makes BLEU zero; split into characters, most n-grams still match.
    assert sentence_bleu("退款会在三个工作日内退回原支付方式", "退款会在三个工作日内退回原来的支付方式") > 0.4


def test_corpus_metrics_refuse_mismatched_or_unlisted_input():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        bleu(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="sentence_bleu"):
        chrf("a string", "another")


@pytest.mark.parametrize("question, answer, echo", [
    ("How long do refunds take?", "Refunds take 5 to 10 business days.", False),
    ("How long do refunds take?", "How long do refunds take? Refunds take 5 days.", True),
    ("How long do refunds take to arrive?", "how long do refunds take to arrive", True),
    ("退货需要多长时间？", "退货需要多长时间？请看文档", True),
    ("退货需要多长时间？", "退货在 30 天内可以办理。", False),
    ("Refund?", "Refund? Yes.", False),  # too short a question to tell
])
def test_an_answer_that_repeats_its_question_echoes(question, answer, echo):
    from evaluation.metrics.text import echoes

    assert echoes(question, answer) is echo
