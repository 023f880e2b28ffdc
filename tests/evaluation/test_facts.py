"""Key facts from a reference answer, fact recall and consistency, in English and Chinese."""

from evaluation.metrics.facts import fact_recall, key_facts, same_facts


def test_english_facts_are_numbers_with_units_kept_exact():
    assert key_facts("Refunds arrive within 5 business days; shipping over $75 is free.") == ["5 business days", "$75"]
    facts = key_facts("Orders placed before 14:00 ship the same day; returns are accepted for 30 days (15% fee).")
    assert {"14:00", "30 days", "15%"} <= set(facts)


def test_chinese_facts_keep_the_number_with_its_measure_word_and_unit():
    assert key_facts("退款 3 个工作日内到账。") == ["3 个工作日"]
    facts = key_facts("满 75 美元包邮，三十天内可退货，下午2点前下单当天发货。")
    assert facts == ["75 美元", "三十天", "下午2点"]


def test_emails_urls_and_names_are_facts():
    facts = key_facts("Contact Customer Care at support@shop.example.com or https://shop.example.com/returns-30. "
                      "We accept Visa and PayPal.")
    assert facts == ["Customer Care", "support@shop.example.com", "https://shop.example.com/returns-30", "Visa", "PayPal"]
    assert key_facts('The "Express Saver" option is run by Acme Corp.') == ["Express Saver", "Acme Corp"]
    zh = key_facts("请使用 PayPal 付款，“七天无理由退货”适用于 iPhone，客服电话 400-820-8820。")
    assert zh == ["PayPal", "七天无理由退货", "iPhone", "400-820-8820"]


def test_a_sentence_start_is_not_a_name_unless_the_source_says_so():
    assert key_facts("Refunds are free.") == []
    assert key_facts("Visa is accepted.") == []
    assert key_facts("Visa is accepted.", source="At checkout we take Visa and Mastercard.") == ["Visa"]


def test_a_wrong_number_gets_no_credit_for_that_fact():
    assert fact_recall("Refunds take 7 days.", ["5 days"]) == 0.0
    assert fact_recall("Refunds take 5 days.", ["5 days"]) == 1.0
    assert fact_recall("Refunds take 5 days.", ["5 business days"]) == 0.0  # a business day is not a day
    assert fact_recall("Shipping over $750 is free.", ["$75"]) == 0.0  # not a substring match


def test_recall_compares_numbers_across_formats_and_languages():
    facts = key_facts("Refunds arrive within 5 business days; shipping over $75 is free.")
    assert fact_recall("Five working days, and orders above 75 dollars ship free.", facts) == 1.0
    assert fact_recall("5 个工作日内退款，满 75 美元免运费。", facts) == 1.0
    assert fact_recall("5 个工作日内退款。", facts) == 0.5
    assert fact_recall("退款三个工作日内到账", key_facts("退款 3 个工作日内到账")) == 1.0
    assert fact_recall("退款三十个工作日内到账", key_facts("退款 3 个工作日内到账")) == 0.0


def test_names_compare_ignoring_case_spaces_and_punctuation():
    assert fact_recall("Pay with paypal or VISA.", ["PayPal", "Visa"]) == 1.0
    assert fact_recall("适用“七天无理由 退货”。", ["七天无理由退货"]) == 1.0
    assert fact_recall("Pay by card.", ["PayPal"]) == 0.0
    assert fact_recall("anything", []) == 1.0  # nothing to miss


def test_same_facts_needs_every_answer_to_state_the_same_facts_and_numbers():
    facts = ["5 business days", "$75"]
    assert same_facts(["5 business days, free over $75.", "Five working days; $75.", "5 个工作日，75 美元"], facts)
    assert not same_facts(["5 business days, free over $75.", "5 business days.", "5 business days, $75."], facts)
    # All three miss the fact, but they disagree with each other: not consistent.
    assert not same_facts(["7 business days", "3 business days", "10 business days"], facts)
    assert same_facts(["I don't know.", "I don't know."], facts)
    assert same_facts(["only one"], facts)
