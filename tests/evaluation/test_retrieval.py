"""Retrieval and citation metrics: hit@k, MRR, and whether the cited chunk supports the answer."""

import pytest

from evaluation.metrics.retrieval import citation_support, cited_numbers, hit_at_k, mrr, reciprocal_rank

EN_CHUNK = "Refunds reach your card within 10 working days. Return shipping costs $5.95 unless the item is faulty."
ZH_CHUNK = "退款会在检验后 5 至 10 个工作日内退回原支付方式。下单后 1 小时内可以免费取消订单。"


def test_hit_at_k_counts_the_source_chunk_in_the_first_k():
    ranked = ["c7", "c2", "c9"]
    assert hit_at_k(ranked, "c2", k=2) == 1.0
    assert hit_at_k(ranked, "c2", k=1) == 0.0
    assert hit_at_k(ranked, "c4", k=3) == 0.0
    assert hit_at_k([], "c2", k=3) == 0.0
    with pytest.raises(ValueError, match="k must be at least 1"):
        hit_at_k(ranked, "c2", k=0)


def test_mrr_is_the_mean_reciprocal_rank():
    assert reciprocal_rank(["c7", "c2", "c9"], "c2") == 0.5
    assert reciprocal_rank(["c7"], "c2") == 0.0
    assert mrr([["a", "b"], ["b", "a"], ["x", "y", "a"], ["x"]], ["a", "a", "a", "a"]) == pytest.approx(
        (1 + 0.5 + 1 / 3 + 0) / 4
    )
    with pytest.raises(ValueError, match="one ranking per source id"):
        mrr([["a"]], ["a", "b"])


def test_cited_numbers_reads_the_markers_in_order():
    assert cited_numbers("Within 10 days [2]. Shipping is $5.95 [1][2].") == [2, 1]
    assert cited_numbers("No citation.") == []


@pytest.mark.parametrize("chunk,supported,invented", [
    (EN_CHUNK, "Refunds reach your card within 10 working days [1].", "It takes 45 days and arrives by cheque [1]."),
    (ZH_CHUNK, "退款会在 5 至 10 个工作日内退回原支付方式 [1]。", "需要 45 天，以支票寄出 [1]。"),
], ids=["en", "zh"])
def test_citation_support_is_high_for_a_supported_answer_and_low_for_an_invented_one(chunk, supported, invented):
    assert citation_support(supported, chunk) >= 0.9  # the [1] marker is not counted against it
    assert citation_support(invented, chunk) <= 0.3
    assert citation_support(supported, "Our office is closed on public holidays.") <= 0.2  # the wrong chunk


def test_a_refusal_or_empty_answer_has_no_support():
    assert citation_support("I cannot answer this from the context.", EN_CHUNK) == 0.0
    assert citation_support("无法根据内容回答。", ZH_CHUNK) == 0.0
    assert citation_support(" [1] ", EN_CHUNK) == 0.0
