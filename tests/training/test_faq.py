from training.data.faq import extract_qa

EN = """# FAQ

Q: How long do I have to return an item?
A: Within 30 days of delivery.
Items must be unused.

**Question:** Do you ship abroad?
**Answer:** Yes, to Canada and the EU.

## Is there a warranty?

Furniture has a 5-year warranty.

## Shipping costs

Standard is $5.95.
"""

ZH = """# 常见问题

问：退款多久能到账？
答：检验后 5 至 10 个工作日内退回。

问:可以取消订单吗？
答:下单后 1 小时内可以取消。

## 如何联系客服？

请发送邮件至 support@lumenoak.example。
"""


def test_english_markers_and_question_headings():
    pairs = extract_qa(EN)
    assert [(p.question, p.rule) for p in pairs] == [
        ("How long do I have to return an item?", "qa-markers"),
        ("Do you ship abroad?", "qa-markers"),
        ("Is there a warranty?", "question-heading"),
    ]
    assert pairs[0].answer == "Within 30 days of delivery.\nItems must be unused."
    assert pairs[2].answer == "Furniture has a 5-year warranty."
    assert EN[pairs[0].start :].startswith("Q: How long")


def test_chinese_markers_full_and_half_width_and_headings():
    pairs = extract_qa(ZH)
    assert [p.question for p in pairs] == ["退款多久能到账？", "可以取消订单吗？", "如何联系客服？"]
    assert pairs[1].answer == "下单后 1 小时内可以取消。"
    assert pairs[2].rule == "question-heading"


def test_extracted_questions_skip_code_comments():
    text = "## How do I build a package?\n\n```\n# apt-get build-dep foo?\n```\n\nRun it as root.\n\n## Next?\n\nNo.\n"
    pairs = extract_qa(text)
    assert [p.question for p in pairs] == ["How do I build a package?", "Next?"]
    assert "Run it as root." in pairs[0].answer
