"""Numbers with units, times and dates reduced to canonical keys, so English and Chinese wordings compare."""

import pytest

from evaluation.metrics.quantities import number_value, quantities, quantity_keys


def _spans(text):
    return [(text[q.start : q.end], q.key) for q in quantities(text)]


@pytest.mark.parametrize("text,value", [
    ("1,000", 1000), ("5.50", 5.5), ("三十", 30), ("十五", 15), ("两", 2), ("一百二十", 120),
    ("二〇二四", 2024), ("三万五千", 35000), ("thirty", 30), ("twenty-one", 21), ("Seventeen", 17),
])
def test_numbers_in_digits_chinese_numerals_and_english_words(text, value):
    assert number_value(text) == pytest.approx(value)
    assert number_value("several") is None


def test_units_are_grouped_so_english_and_chinese_wordings_agree():
    same = ["5 business days", "five working days", "5 个工作日", "五个工作日", "5-business-day"]
    assert {k for t in same for k in quantity_keys(t)} == {"5|business-day"}
    assert quantity_keys("5 days") == quantity_keys("5 天") == quantity_keys("五天") == {"5|day"}
    assert quantity_keys("$75") == quantity_keys("75 dollars") == quantity_keys("75 美元") == {"75|usd"}
    assert quantity_keys("¥75") == quantity_keys("75元") == quantity_keys("￥75") == {"75|cny"}
    assert quantity_keys("15%") == quantity_keys("15 percent") == quantity_keys("百分之十五") == {"15|pct"}
    assert quantity_keys("3 个月") == quantity_keys("three months") == {"3|month"}


def test_ranges_times_dates_and_phone_numbers():
    assert quantity_keys("5 to 10 working days") == quantity_keys("5 至 10 个工作日") == {"5-10|business-day"}
    assert quantity_keys("$50-$100") == {"50-100|usd"}
    assert quantity_keys("14:00") == quantity_keys("2 pm") == quantity_keys("2 p.m.") == quantity_keys("下午2点") \
        == {"14:00|time"}
    assert quantity_keys("9:30 am") == quantity_keys("上午九点半") == {"09:30|time"}
    assert quantity_keys("March 15, 2024") == quantity_keys("2024-03-15") == quantity_keys("2024年3月15日") \
        == {"2024-03-15|date"}
    assert quantity_keys("15th of March") == quantity_keys("3月15日") == {"03-15|date"}
    assert quantity_keys("call 400-820-8820") == {"4008208820|phone"}


def test_the_longest_reading_wins_and_words_without_units_are_not_numbers():
    assert _spans("退款 3 个工作日内到账") == [("3 个工作日", "3|business-day")]
    assert _spans("3月15日") == [("3月15日", "03-15|date")]  # one date, not "15日" (15 days)
    assert _spans("order 12345 costs $5.95") == [("12345", "12345|"), ("$5.95", "5.95|usd")]
    assert quantities("one of them said someone would 统一 处理, 慢一点") == []
    assert quantity_keys("model X200") == set()
