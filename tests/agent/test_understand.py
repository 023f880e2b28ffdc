"""The interview understands answers in English and Chinese, and says None (ask again) when it cannot."""

import pytest

from agent.interview.glossary import ALIASES, GLOSSARY, explain, term_of
from agent.interview.understand import (
    SLOTS,
    Choice,
    GpuAnswer,
    Quantity,
    choice,
    correction,
    gpus,
    is_default,
    languages,
    number,
    parse_path,
    quantity,
    question_back,
    yes_no,
)

YES_NO = [
    ("yes", True), ("y", True), ("Yeah!", True), ("yep", True), ("sure", True), ("OK", True), ("okay", True),
    ("go ahead", True), ("do it", True), ("please do", True), ("of course", True), ("right", True),
    ("correct", True), ("no", False), ("n", False), ("nope", False), ("nah", False), ("don't", False),
    ("stop", False), ("cancel", False), ("not now", False), ("好", True), ("好的", True), ("行", True),
    ("可以", True), ("是", True), ("是的", True), ("对", True), ("嗯", True), ("没问题", True), ("开始吧", True),
    ("确定", True), ("不", False), ("不要", False), ("不用", False), ("不行", False), ("否", False),
    ("算了", False), ("取消", False), ("别", False),
    # negation and mixed answers
    ("not sure", None), ("I'm not sure", None), ("no problem", True), ("I don't think so", False),
    ("I don’t think so", False), ("不是", False), ("好的，不过…", True), ("好的，不过我不确定时间够不够", True),
    ("of course not", False), ("不太好", False), ("嗯，不要了", False), ("why not", True), ("我觉得可以", True),
    ("我觉得不行", False), ("sure, but not the 7B one", True), ("好像不对", False),
    # not an answer
    ("maybe", None), ("也许", None), ("yes and no", None), ("probably", None), ("ok?", None), ("可以吗", None),
    ("是不是要训练很久", None), ("DPO 是什么", None), ("what is DPO?", None), ("hello", None), ("", None),
    ("对不起，我没看懂", None),
]


@pytest.mark.parametrize(("text", "expected"), YES_NO)
def test_yes_no(text, expected):
    assert yes_no(text) is expected


DEFAULTS = [
    ("default", True), ("use the default", True), ("the defaults are fine", True), ("whatever", True),
    ("you choose", True), ("you decide", True), ("recommended", True), ("the recommended one", True),
    ("any", True), ("I don't care", True), ("up to you", True), ("默认", True), ("随便", True), ("都行", True),
    ("你定", True), ("你决定吧", True), ("推荐的", True), ("按推荐", True), ("听你的", True),
    ("skip", False), ("not the default", False), ("don't use the default", False), ("不要默认", False),
    ("不用默认的", False), ("what do you recommend?", False), ("你推荐的是什么", False), ("DPO", False),
    ("any other models?", False), ("", False),
]


@pytest.mark.parametrize(("text", "expected"), DEFAULTS)
def test_is_default(text, expected):
    assert is_default(text) is expected


METHODS = [
    Choice("sft", ("fine-tune on Q&A", "问答", "监督微调")),
    Choice("raft", ("retrieval-augmented", "检索增强")),
    Choice("dpo", ("preference", "偏好")),
    Choice("cpt", ("continued pretraining", "继续预训练", "预训练")),
]
CHOICES = [
    ("2", "raft"), ("2.", "raft"), ("the second", "raft"), ("second one", "raft"), ("I think the second one", "raft"),
    ("第二个", "raft"), ("选2", "raft"), ("选二", "raft"), ("option 2", "raft"), ("#4", "cpt"), ("two", "raft"),
    ("第三", "dpo"), ("用第一个", "sft"), ("the last one", "cpt"), ("最后一个", "cpt"),
    ("DPO", "dpo"), ("dpo please", "dpo"), ("偏好", "dpo"), ("I want to fine-tune on Q&A", "sft"),
    ("fine tune on q&a", "sft"), ("RAFT", "raft"), ("我选问答", "sft"), ("继续预训练", "cpt"),
    ("Continued Pretraining", "cpt"), ("not DPO, SFT", "sft"), ("不要 DPO，用 SFT", "sft"),
    # none, or more than one
    ("sft or dpo", None), ("5", None), ("option 7", None), ("第九个", None), ("hello", None), ("raftx", None),
    ("dpo, or the first", None), ("", None),
]


@pytest.mark.parametrize(("text", "expected"), CHOICES)
def test_choice(text, expected):
    assert choice(text, METHODS) == expected


def test_choice_prefers_the_longer_name_of_another_option():
    options = [Choice("lora", ("LoRA",)), Choice("qlora", ("QLoRA", "4-bit"))]
    assert choice("QLoRA", options) == "qlora" and choice("lora", options) == "lora"
    assert choice("4 bit", options) == "qlora"  # a hyphen, a space or nothing all match


NUMBERS = [
    ("3", 3.0), ("1.5", 1.5), ("1,000", 1000.0), ("about twelve", 12.0), ("三", 3.0), ("十五", 15.0),
    ("二十", 20.0), ("两百", 200.0), ("一百零五", 105.0), ("一百二", 120.0), ("九百九十九", 999.0),
    ("两个半", 2.5), ("一半", 0.5), ("half", 0.5), ("twenty", 20.0),
    ("二四", None), ("一些", None), ("统一", None), ("none", None), ("", None),
]


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_number(text, expected):
    assert number(text) == expected


QUANTITIES = [
    # memory, in GiB
    ("24G", "memory", 24.0), ("24 GB", "memory", 24.0), ("24gb", "memory", 24.0), ("16 GiB", "memory", 16.0),
    ("512 MB", "memory", 0.5), ("1TB", "memory", 1024.0), ("24 个 G", "memory", 24.0),
    ("24G显存", "memory", 24.0), ("显存二十四G", "memory", 24.0), ("80 gigs", "memory", 80.0), ("24", "memory", 24.0),
    ("2 T4", "memory", None), ("lots", "memory", None), ("24 hours", "memory", None),
    # duration, in hours
    ("3 hours", "duration", 3.0), ("about 3h", "duration", 3.0), ("90 min", "duration", 1.5),
    ("1.5 hours", "duration", 1.5), ("half an hour", "duration", 0.5), ("an hour", "duration", 1.0),
    ("an hour and a half", "duration", 1.5), ("two and a half hours", "duration", 2.5),
    ("a couple of hours", "duration", 2.0), ("1 hour 30 minutes", "duration", 1.5), ("a day", "duration", 24.0),
    ("3-4 hours", "duration", 3.0), ("两个小时", "duration", 2.0), ("三小时", "duration", 3.0),
    ("半小时", "duration", 0.5), ("半个小时", "duration", 0.5), ("一个半小时", "duration", 1.5),
    ("两个半小时", "duration", 2.5), ("90分钟", "duration", 1.5), ("一天", "duration", 24.0),
    ("三到四个小时", "duration", 3.0), ("一周", "duration", 168.0), ("1h30", "duration", 1.5),
    ("1h30m", "duration", 1.5), ("1小时30分钟", "duration", 1.5),
    ("overnight", "duration", None), ("3", "duration", None), ("a few hours", "duration", None),
    ("24G", "duration", None),
    # counts
    ("two", "count", 2.0), ("four", "count", 4.0), ("两张", "count", 2.0), ("2 张卡", "count", 2.0),
    ("3 GPUs", "count", 3.0), ("一块", "count", 1.0), ("两张 24G 的卡", "count", 2.0), ("dual", "count", 2.0),
    ("1.5", "count", None), ("一下", "count", None), ("several", "count", None),
]


@pytest.mark.parametrize(("text", "kind", "expected"), QUANTITIES)
def test_quantity(text, kind, expected):
    unit = {"memory": "GiB", "duration": "hours", "count": ""}[kind]
    assert quantity(text, kind) == (None if expected is None else Quantity(expected, unit))


def test_quantity_names_the_unit_kinds_it_knows():
    with pytest.raises(ValueError, match="'memory', 'duration' or 'count'"):
        quantity("3", "weight")  # type: ignore[arg-type]


GPUS = [
    ("两张 24G 的卡", GpuAnswer(2, 24.0)), ("one 4090", GpuAnswer(1, 24.0, "4090")),
    ("2x A100 80GB", GpuAnswer(2, 80.0, "A100")), ("一张 A100-80G", GpuAnswer(1, 80.0, "A100")),
    ("A100", GpuAnswer(1, 40.0, "A100")), ("8 x H100", GpuAnswer(8, 80.0, "H100")),
    ("H200 x 8", GpuAnswer(8, 141.0, "H200")), ("two 4090s", GpuAnswer(2, 24.0, "4090")),
    ("4090 两张", GpuAnswer(2, 24.0, "4090")), ("双卡 3090", GpuAnswer(2, 24.0, "3090")),
    ("RTX 4090 24GB x2", GpuAnswer(2, 24.0, "4090")), ("a T4", GpuAnswer(1, 16.0, "T4")),
    ("one L40S", GpuAnswer(1, 48.0, "L40S")), ("L4", GpuAnswer(1, 24.0, "L4")), ("an A10", GpuAnswer(1, 24.0, "A10")),
    ("V100", GpuAnswer(1, 16.0, "V100")), ("24G", GpuAnswer(1, 24.0)), ("我有两块显卡", GpuAnswer(2)),
    ("2 cards, 48G in total", GpuAnswer(2, 24.0)), ("2", GpuAnswer(2)),
    ("no GPU", GpuAnswer(0)), ("没有显卡", GpuAnswer(0)), ("只有CPU", GpuAnswer(0)), ("cpu only", GpuAnswer(0)),
    ("I don't have a GPU", GpuAnswer(0)), ("none", GpuAnswer(0)),
    ("32G内存，没有显卡", GpuAnswer(0)), ("4090, 64GB of RAM", GpuAnswer(1, 24.0, "4090")),
    ("I have 3 kids", None), ("a 4090 and a 3090", None), ("8GB RAM laptop", None), ("hello", None),
]


@pytest.mark.parametrize(("text", "expected"), GPUS)
def test_gpus(text, expected):
    assert gpus(text) == expected


PATHS = [
    ("my docs are in ~/company/docs", "HOME/company/docs"), ("在 /data/faq 目录下", "/data/faq"),
    ("在/data/faq目录下", "/data/faq"), ('"/data/My Docs"', "/data/My Docs"),
    ("文档放在 ‘/srv/知识库’ 里", "/srv/知识库"), ("~/文档/公司", "HOME/文档/公司"), ("/data/faq/", "/data/faq"),
    ("they are at ./docs.", "docs"), ("../shared/docs", "../shared/docs"), ("~", "HOME"),
    ("see https://example.com/docs", None), ("24/7 support", None), ("docs", None), ("about ~3 hours", None),
    ("no path here", None), ("", None),
]


@pytest.mark.parametrize(("text", "expected"), PATHS)
def test_parse_path(text, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    want = None if expected is None else expected.replace("HOME", str(tmp_path))
    assert parse_path(text) == want


CORRECTIONS = [
    ("actually use Qwen", ("base_model", "Qwen")), ("换成 Qwen2.5-7B", ("base_model", "Qwen2.5-7B")),
    ("还是用 Llama 吧", ("base_model", "Llama")), ("改一下模型", ("base_model", "")),
    ("change the language to Chinese", ("languages", "Chinese")), ("改成中文", ("languages", "中文")),
    ("把语言改成英文", ("languages", "英文")), ("make it English", ("languages", "English")),
    ("换成 DPO", ("method", "DPO")), ("use DPO instead", ("method", "DPO")), ("switch to QLoRA", ("method", "QLoRA")),
    ("change the method", ("method", "")),
    ("不对，文档在 /x/y", ("docs", "文档在 /x/y")), ("set the docs folder to ~/new", ("docs", "~/new")),
    ("no wait, 3 hours", ("time_budget", "3 hours")), ("wait, make it 4 hours", ("time_budget", "4 hours")),
    ("其实时间只有两个小时", ("time_budget", "时间只有两个小时")),
    ("actually I have two 4090s", ("hardware", "I have two 4090s")), ("actually, no GPU", ("hardware", "no GPU")),
    ("把显卡改成两张 4090", ("hardware", "两张 4090")),
    ("I meant the second one", ("", "second one")), ("no wait, 2", ("", "2")),
    ("不对", None), ("actually", None), ("sure", None), ("I want 3 hours", None),
    ("I want to set up a chatbot to answer FAQ", None), ("", None),
]


@pytest.mark.parametrize(("text", "expected"), CORRECTIONS)
def test_correction(text, expected):
    got = correction(text)
    assert got == expected
    assert got is None or got[0] in (*SLOTS, "")


LANGUAGES = [
    ("English", ("en",)), ("Chinese", ("zh",)), ("both", ("en", "zh")), ("中文", ("zh",)), ("英文", ("en",)),
    ("中英文", ("en", "zh")), ("都要", ("en", "zh")), ("zh", ("zh",)), ("en", ("en",)),
    ("中英双语", ("en", "zh")), ("Chinese and English", ("en", "zh")), ("bilingual", ("en", "zh")),
    ("用中文吧", ("zh",)), ("English only", ("en",)), ("Chinese, not English", ("zh",)),
    ("只要中文，不要英文", ("zh",)), ("French", None), ("hello", None), ("", None),
]


@pytest.mark.parametrize(("text", "expected"), LANGUAGES)
def test_languages(text, expected):
    assert languages(text) == expected


QUESTIONS = [
    ("what is DPO?", "dpo"), ("DPO 是什么", "dpo"), ("什么是 LoRA", "lora"), ("what does QLoRA mean", "qlora"),
    ("explain RAFT", "raft"), ("DPO?", "dpo"), ("what's an epoch", "epoch"), ("what is the base model", "base_model"),
    ("GGUF 是啥", "gguf"), ("检索增强是什么", "rag"), ("检索增强微调是什么", "raft"), ("微调是什么意思", "sft"),
    ("tell me about tokens", "token"), ("what is evaluation", "evaluation"), ("CPT是干什么的", "cpt"),
    ("why?", "why"), ("为什么", "why"), ("why DPO?", "why"), ("为啥推荐 DPO", "why"), ("DPO 为什么更好", "why"),
    ("why not", None), ("what is a banana?", None), ("sft", None), ("3 hours", None), ("好的", None), ("", None),
]


@pytest.mark.parametrize(("text", "expected"), QUESTIONS)
def test_question_back(text, expected):
    assert question_back(text) == expected


TERMS = ["sft", "raft", "dpo", "cpt", "lora", "qlora", "rag", "epoch", "gguf", "base_model", "evaluation", "token", "tiny"]


@pytest.mark.parametrize("term", TERMS)
def test_every_term_is_explained_in_both_languages_in_two_or_three_sentences(term):
    en, zh = explain(term, "en"), explain(term, "zh")
    assert en != zh and en.isascii() and not zh.isascii()
    assert 2 <= en.count(". ") + 1 <= 3 and 2 <= zh.count("。") <= 3


def test_aliases_reach_terms_and_unknown_terms_are_named():
    assert set(ALIASES.values()) <= set(GLOSSARY) and set(GLOSSARY) == set(TERMS)
    assert term_of("Fine-Tuning") == "sft" and term_of("微调") == "sft" and term_of("检索增强") == "rag"
    assert explain("微调", "zh-CN") == GLOSSARY["sft"]["zh"] and explain("DPO") == GLOSSARY["dpo"]["en"]
    with pytest.raises(KeyError, match="known terms: base_model"):
        explain("banana", "en")
