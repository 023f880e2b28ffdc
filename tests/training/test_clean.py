import copy
import json

import pytest

from training.data.clean import CleanConfig, clean_records
from training.data.dedup import near_duplicates
from training.errors import BadDataset

EN_A = ("You can return most items within 30 days of delivery for a full refund. Items must be unused, in "
        "their original packaging, and accompanied by the receipt or order number. Furniture that has been "
        "assembled can only be returned if it is defective. Refunds are issued to the original payment "
        "method within 5 to 10 business days after the warehouse has inspected the returned item. Return "
        "shipping is free for defective goods; otherwise a flat fee of $5.95 is deducted from the refund.")
EN_A_NEAR = EN_A.replace("most items", "almost all items").replace("5 to 10", "7 to 10").replace("flat fee", "fixed fee")
EN_B = ("Returns are handled by our service desk rather than by the courier. To start a return, open your "
        "order history, choose the item and print the prepaid label we email you. Drop the parcel at any "
        "post office within two weeks. Gift cards, custom-cut fabric and mattresses are excluded from "
        "returns for hygiene and legal reasons, and opened software can only be exchanged for the same title.")
ZH_A = ("自收货之日起三十天内，大部分商品都可以申请全额退款。商品必须保持未使用状态，保留原包装，并附上收据或订单号。"
        "已经组装的家具只有在存在质量问题时才能退货。仓库检验退回的商品后，退款将在五到十个工作日内原路退回。"
        "质量问题商品的退货运费由我们承担，其他情况将从退款中扣除五元九角五分的固定运费。"
        "如果您在收到包裹时发现外箱破损，请当场拍照并拒绝签收，客服会为您重新安排发货。"
        "会员在有效期内享受延长至六十天的退货期限，但特价清仓商品除外。")
ZH_A_NEAR = ZH_A.replace("大部分", "绝大多数").replace("五到十个", "七到十个").replace("固定运费", "统一运费")
ZH_B = ("退货由我们的客服中心处理，而不是由快递员处理。如需退货，请打开订单历史，选择商品并打印我们通过邮件发送的预付标签。"
        "请在两周内把包裹交到任意邮局。出于卫生和法律原因，礼品卡、定制裁剪的布料和床垫不支持退货，已拆封的软件只能换同一款。")


def chat(user, answer, system=None, meta=None):
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": msgs, **({"meta": meta} if meta is not None else {})}


def texts(records):
    return [r["text"] for r in records]


def step(report, name):
    (s,) = [s for s in report.steps if s.name == name]
    return s


def test_broken_text_is_dropped_and_counted_by_reason():
    good = "São Paulo – café, naïve «façade» ½ über Ελληνικά 中文 🙂"
    records = [
        {"text": good},
        {"text": "price: 12\ufffd50"},  # broken UTF-8 decoded with errors="replace"
        {"text": "Café résumé".encode().decode("cp1252")},  # "CafÃ© rÃ©sumÃ©"
        {"text": "退货政策".encode().decode("latin-1")},  # UTF-8 read as Latin-1
        chat("中文".encode().decode("cp1252"), "ok"),  # "ä¸­æ–‡" in a chat turn
        {"text": "lone \ud800 surrogate"},
    ]
    out, report = clean_records(records)
    assert texts(out) == [good]
    s = step(report, "utf8")
    assert (s.before, s.after) == (6, 1)
    assert s.detail["removed"] == 5
    assert (s.detail["replacement-char"], s.detail["mojibake"], s.detail["surrogate"]) == (1, 3, 1)
    assert [e["index"] for e in s.detail["examples"]] == [1, 2, 3]


def test_nfc_and_control_characters_in_text_fields_only():
    meta = {"source": "cafe\u0301.md", "note": "x\x00y \ufffd"}  # meta is never touched, even if odd
    records = [{"text": "cafe\u0301\x00\x07 line\r\nnext\tcol\rend\ufeff", "meta": meta}]
    (out,), _ = clean_records(records)
    assert out["text"] == "café line\nnext\tcol\nend"
    assert out["meta"]["source"] == "cafe\u0301.md" and out["meta"]["note"] == "x\x00y \ufffd"


def test_empty_records_are_dropped():
    records = [
        {"text": " \n\t"},
        chat("question?", "   "),
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": ""}],
         "rejected": [{"role": "assistant", "content": "bad"}]},
        chat("question?", "answer"),
    ]
    out, report = clean_records(records)
    assert out == [{**chat("question?", "answer"), "meta": {"language": "en"}}]
    assert step(report, "empty").detail["removed"] == 4


def test_exact_duplicates_after_whitespace_normalisation_keep_the_first():
    records = [{"text": "Hello   world.\n", "meta": {"i": 0}}, {"text": "Hello world.", "meta": {"i": 1}},
               {"text": "hello world."}, {"text": " Hello world. ", "meta": {"i": 3}}]
    out, report = clean_records(records, CleanConfig(near_dup_threshold=None))
    assert [r.get("meta", {}).get("i") for r in out] == [0, None]  # case differs: not an exact copy
    s = step(report, "exact-dedup")
    assert (s.before, s.after, s.detail["removed"]) == (4, 2, 2)
    assert [e["index"] for e in s.detail["examples"]] == [1, 3]
    assert "near-dedup" not in [s.name for s in report.steps]


def test_near_duplicates_removed_in_english_and_chinese_distinct_same_topic_kept():
    records = [{"text": t} for t in (EN_A, EN_B, EN_A_NEAR, ZH_A, ZH_B, ZH_A_NEAR, EN_A.upper().replace(".", "!"))]
    out, report = clean_records(records)
    assert texts(out) == [EN_A, EN_B, ZH_A, ZH_B]
    s = step(report, "near-dedup")
    assert (s.before, s.after, s.detail["removed"]) == (7, 4, 3)
    assert [(e["index"], e["duplicate_of"]) for e in s.detail["examples"]] == [(2, 0), (5, 3), (6, 0)]
    assert all(e["similarity"] >= 0.85 for e in s.detail["examples"])


def test_near_duplicates_threshold_is_respected():
    assert near_duplicates([EN_A, EN_A_NEAR], threshold=0.95) == [None, None]
    assert near_duplicates([ZH_A, ZH_A_NEAR])[1][0] == 0


def test_system_message_neither_separates_nor_merges_records():
    context = "\n\n".join([EN_A, ZH_A, EN_B, ZH_B])  # retrieved chunks, shared by every example
    records = [
        chat("How long do I have to return an item?", "30 days from delivery.", system=context),
        chat("Is return shipping free?", "Only for defective goods.", system=context),
        chat("退款多久到账？", "五到十个工作日。", system=context),
        chat("How long do I have to return an item?", "30 days from delivery.", system="Other context. " + EN_B),
    ]
    out, report = clean_records(records)
    assert out == [{**r, "meta": {"language": lang}} for r, lang in zip(records[:3], "en en zh".split(), strict=True)]
    assert step(report, "exact-dedup").detail["removed"] == 1
    assert step(report, "near-dedup").detail["removed"] == 0


def test_preference_records_compare_prompt_user_turns_chosen_and_rejected():
    def pref(system, user, chosen, rejected):
        return {"prompt": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}]}

    records = [pref("ctx one", "Do you ship abroad?", "Yes, to Canada and the EU.", "No."),
               pref("ctx two", "Do you ship abroad?", "Yes, to Canada and the EU.", "No."),
               pref("ctx one", "Do you ship abroad?", "Yes, to Canada and the EU.", "Only to Mars, by rocket.")]
    out, _ = clean_records(records)
    assert [r["prompt"][0]["content"] for r in out] == ["ctx one", "ctx one"]
    assert out[1]["rejected"][0]["content"] == "Only to Mars, by rocket."


def test_meta_is_copied_unchanged_plus_language_and_inputs_are_not_modified():
    records = [
        {"text": EN_A, "meta": {"source": "a.md", "tags": ["x"], "nested": {"k": [1, 2]}}},
        {"text": ZH_A, "meta": {"source": "b.md"}},
        {"text": ZH_B, "meta": {"source": "c.md", "language": "en"}},  # set by the user: kept as is
        {"text": EN_B},
    ]
    before = copy.deepcopy(records)
    out, report = clean_records(records, CleanConfig(mask_pii=True))
    assert records == before
    assert [r["meta"] for r in out] == [
        {**before[0]["meta"], "language": "en"}, {**before[1]["meta"], "language": "zh"},
        before[2]["meta"], {"language": "en"}]
    assert step(report, "language").detail == {"en": 3, "zh": 1, "detected": 3}


def test_length_filter_with_count_tokens_counts_the_whole_record():
    calls = []

    def count_tokens(s):
        assert isinstance(s, str)
        calls.append(s)
        return len(s.split())

    long_context = " ".join(["context"] * 20)
    records = [
        {"text": "one two"},  # 2 tokens: too short
        {"text": "one two three four five"},  # kept
        {"text": " ".join(str(i) for i in range(12))},  # 12: too long
        chat("short question here", "short answer"),  # 5: kept
        chat("short question here", "other answer", system=long_context),  # 25 with the system message
    ]
    out, report = clean_records(records, CleanConfig(min_tokens=3, max_tokens=10), count_tokens=count_tokens)
    assert [r.get("text") or r["messages"][-1]["content"] for r in out] == ["one two three four five", "short answer"]
    d = step(report, "length").detail
    assert (d["removed"], d["too_short"], d["too_long"], d["counted_with"]) == (3, 1, 2, "count_tokens")
    assert any(long_context in c for c in calls)


def test_default_length_is_characters_over_four():
    out, report = clean_records([{"text": "abcd"}, {"text": "x" * 40}, {"text": "y" * 41}],
                                CleanConfig(min_tokens=1, max_tokens=10))
    assert texts(out) == ["abcd", "x" * 40]
    assert step(report, "length").detail["counted_with"] == "characters/4"


def test_pii_masking_covers_every_text_field_and_counts_by_kind():
    records = [
        chat("My email is li.lei@example.com, call 13812345678", "Noted.",
             system="Agent phone (415) 555-0132", meta={"owner": "ops@example.com"}),
        {"prompt": [{"role": "user", "content": "卡号4111111111111111可以用吗？"}],
         "chosen": [{"role": "assistant", "content": "请不要发送卡号。"}],
         "rejected": [{"role": "assistant", "content": "可以，身份证11010519491231002X也发我。"}]},
        {"text": "Version 1.2.3 released on 2024-05-01."},
    ]
    out, report = clean_records(records, CleanConfig(mask_pii=True))
    assert out[0]["messages"][0]["content"] == "Agent phone [PHONE]"
    assert out[0]["messages"][1]["content"] == "My email is [EMAIL], call [PHONE]"
    assert out[0]["meta"] == {"owner": "ops@example.com", "language": "en"}  # meta is not masked
    assert out[1]["prompt"][0]["content"] == "卡号[CARD]可以用吗？"
    assert out[1]["rejected"][0]["content"] == "可以，身份证[ID]也发我。"
    assert out[2]["text"] == records[2]["text"]
    s = step(report, "pii")
    assert s.detail == {"records_changed": 2, "email": 1, "phone": 2, "id": 1, "card": 1}
    assert (s.before, s.after) == (3, 3)
    _, plain = clean_records(records)
    assert "pii" not in [s.name for s in plain.steps]


def test_report_steps_chain_and_serialise():
    records = [{"text": EN_A}, {"text": EN_A}, {"text": EN_A_NEAR}, {"text": ""}, {"text": "bad \ufffd"},
               {"text": ZH_A}, {"text": "tiny"}]
    out, report = clean_records(records, CleanConfig(min_tokens=5, mask_pii=True))
    names = [s.name for s in report.steps]
    assert names == ["utf8", "empty", "exact-dedup", "near-dedup", "length", "language", "pii"]
    assert [(s.before, s.after) for s in report.steps] == [(7, 6), (6, 5), (5, 4), (4, 3), (3, 2), (2, 2), (2, 2)]
    d = report.as_dict()
    assert (d["input"], d["output"]) == (7, len(out)) == (7, 2)
    assert json.loads(json.dumps(d, ensure_ascii=False))["steps"][3]["detail"]["removed"] == 1
    lines = report.summary().splitlines()
    assert len(lines) == 7 and lines[2].split()[:4] == ["exact-dedup", "5", "->", "4"]


@pytest.mark.parametrize(
    "bad", [{"prompt": "q"}, {"text": 3}, {"messages": [{"role": "user"}]}, ["text"], {"text": "x", "meta": "en"}]
)
def test_unknown_or_malformed_record_names_its_index(bad):
    with pytest.raises(BadDataset, match=r"record 1\b"):
        clean_records([{"text": "ok"}, bad])


def test_config_is_validated():
    with pytest.raises(ValueError, match="near_dup_threshold"):
        CleanConfig(near_dup_threshold=1.5)
    with pytest.raises(ValueError, match="Lower near_dup_threshold"):
        CleanConfig(near_dup_threshold=0.99)
    with pytest.raises(ValueError, match="max_tokens"):
        CleanConfig(min_tokens=10, max_tokens=5)


@pytest.mark.slow
def test_ten_thousand_records_of_500_characters_in_well_under_a_minute():
    import random
    import time

    rng = random.Random(0)
    words = (EN_A + " " + EN_B).split()
    han = ZH_A + ZH_B
    records = [{"text": " ".join(rng.choices(words, k=90))[:500]} if i % 2 else
               {"text": "".join(rng.choices(han, k=500))} for i in range(10_000)]
    t0 = time.perf_counter()
    out, _ = clean_records(records, CleanConfig(mask_pii=True))
    assert time.perf_counter() - t0 < 30
    assert len(out) > 9_000


def test_mojibake_inside_other_text_is_found_and_stray_c1_controls_are_only_stripped():
    records = [{"text": "退货政策说明：\n" + "Café résumé".encode().decode("cp1252") + "\n正常文本"},
               {"text": "price 5\x80 and \x85 more"}]
    out, report = clean_records(records)
    assert texts(out) == ["price 5 and  more"]
    assert step(report, "utf8").detail["mojibake"] == 1


def test_config_errors_are_bad_config():
    from training.errors import BadConfig

    for kw in ({"near_dup_threshold": 1.5}, {"near_dup_threshold": 0.99}, {"num_perm": 8}, {"shingle_size": 0}):
        with pytest.raises(BadConfig):
            CleanConfig(**kw)
