from collections import Counter

import pytest

from training.data.pii import cn_id_ok, luhn_ok, mask_pii

# A CN resident ID with a correct check character (the "X" is the MOD 11-2 check), and well-known
# payment-card test numbers (Visa, Mastercard, Amex, Discover, JCB, UnionPay).
CN_ID = "11010519491231002X"


@pytest.mark.parametrize(
    ("text", "masked", "kind"),
    [
        # emails
        ("Write to li.lei+orders@example.co.uk.", "Write to [EMAIL].", "email"),
        ("请发邮件到li.lei@example.com谢谢", "请发邮件到[EMAIL]谢谢", "email"),
        # CN mobile, with and without the country code and grouping; no spaces around it in Chinese
        ("电话13812345678联系", "电话[PHONE]联系", "phone"),
        ("手机：+86 138 1234 5678。", "手机：[PHONE]。", "phone"),
        ("call +86-138-1234-5678 now", "call [PHONE] now", "phone"),
        ("备用 8615912345678", "备用 [PHONE]", "phone"),
        # CN landline
        ("座机010-12345678，", "座机[PHONE]，", "phone"),
        ("前台 (0755) 87654321", "前台 [PHONE]", "phone"),
        # US phones
        ("Call (415) 555-0132 today", "Call [PHONE] today", "phone"),
        ("Call 415-555-0132.", "Call [PHONE].", "phone"),
        ("Call 415.555.0132", "Call [PHONE]", "phone"),
        ("Call +1 415 555 0132", "Call [PHONE]", "phone"),
        ("美国号码+1-415-555-0132", "美国号码[PHONE]", "phone"),
        # IDs: CN resident ID, US SSN
        (f"身份证号{CN_ID}。", "身份证号[ID]。", "id"),
        (f"ID card: {CN_ID.lower()}", "ID card: [ID]", "id"),
        ("SSN 123-45-6789 on file", "SSN [ID] on file", "id"),
        ("社保号123-45-6789", "社保号[ID]", "id"),
        # payment cards, grouped or not
        ("card 4111 1111 1111 1111 exp 12/27", "card [CARD] exp 12/27", "card"),
        ("卡号4111111111111111到期", "卡号[CARD]到期", "card"),
        ("MC 5555-5555-5555-4444", "MC [CARD]", "card"),
        ("Amex 3782 822463 10005", "Amex [CARD]", "card"),
        ("银联卡 6200000000000005。", "银联卡 [CARD]。", "card"),
        ("JCB 3530111333300000 / Discover 6011111111111117", "JCB [CARD] / Discover [CARD]", "card"),
    ],
)
def test_each_kind_is_masked_in_english_and_chinese(text, masked, kind):
    out, counts = mask_pii(text)
    assert out == masked
    assert set(counts) == {kind}
    assert counts[kind] == masked.count(f"[{kind.upper()}]")


@pytest.mark.parametrize(
    "text",
    [
        "Released on 2024-05-01, version 1.2.3, in 2024.",
        "发布于2024-05-01，版本v10.2.3.4567，2024年5月1日",
        "Price $1,299.99 or ¥13800.50; 3.14159265358979",
        "订单号2024050112345678已发货",  # 16 digits, fails Luhn
        "order 4111111111111112 shipped",  # one digit off a card number: fails Luhn
        "证件 110105194912310021",  # the ID above with a wrong check character
        "证件 440301199001011235",  # an 18-digit number that fails both the ID and the Luhn check
        "SSN-like 666-45-6789, 900-12-3456 and 000-12-3456 are never issued",
        "ip 192.168.100.1, port 8080, build 1715000000000",
        "serial 13812345678.5 and 0.13812345678",  # a decimal, not a phone
        "id 12345678901234567890",  # 20 digits: too long for a card, not a phone
        "call extension 123-4567",  # too short for a US number
    ],
)
def test_true_negatives_are_left_alone(text):
    assert mask_pii(text) == (text, Counter())


def test_mixed_text_counts_every_kind():
    text = (f"联系人 li@example.com，手机13912345678，座机021-87654321，身份证{CN_ID}，"
            "卡号 4111 1111 1111 1111. US office (212) 555-0100, SSN 078-05-1120.")
    out, counts = mask_pii(text)
    assert counts == Counter({"phone": 3, "id": 2, "email": 1, "card": 1})
    assert not any(ch.isdigit() for ch in out.replace("[", "").replace("]", ""))


def test_check_digit_helpers():
    assert cn_id_ok(CN_ID) and not cn_id_ok("110105194912310021") and not cn_id_ok("12345")
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
