"""The interview's questions: for each slot of the plan, what to ask (English and Chinese), how to read the
answer without an LLM, and why the default is the default.

A reader returns the slot's value, or raises `Unclear` with the re-ask in both languages; it never guesses.
`answer_turn` (turn.py) decides whether an answer is a value, a default, a correction or a question back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.interview import understand as u
from agent.interview.plan import Hardware


class Unclear(Exception):
    """The answer does not fill the slot; `say` is the re-ask, by language."""

    def __init__(self, say: dict[str, str]):
        super().__init__(say["en"])
        self.say = say


@dataclass(frozen=True)
class Question:
    slot: str
    ask: dict[str, str]
    read: Callable[[str], object]
    why_default: dict[str, str]


STAGES = (u.Choice("sft", ("questions and answers", "q&a", "问答", "监督微调")),
          u.Choice("raft", ("rag fine-tuning", "检索增强微调")),
          u.Choice("dpo", ("preference", "preferences", "偏好")),
          u.Choice("cpt", ("pre-training", "pretraining", "continued pre-training", "继续预训练", "预训练")))
DEPLOYS = (u.Choice("local", ("this machine", "here", "本机", "本地")),
           u.Choice("compose", ("docker", "docker compose", "容器")),
           u.Choice("kubernetes", ("k8s", "helm", "集群")),
           u.Choice("none", ("nowhere", "not yet", "不部署", "暂不")))


_GREETING = re.compile(r"^(?:hello|hi|hey|hiya|good\s+(?:morning|afternoon|evening)|你好|您好|嗨|哈喽|早上好|下午好|晚上好)"
                       r"(?:\s+there)?[\s!.,，。！~]*$", re.IGNORECASE)


def _text(answer: str) -> str:
    text = answer.strip()
    if _GREETING.match(text):
        raise Unclear({"en": "Hello! I will set up an assistant that knows your documents. First: what should it do, "
                             "and who will ask it questions?",
                       "zh": "你好！我来帮你搭建一个熟悉你文档的助手。先说说：它要做什么？谁会向它提问？"})
    if len(text) < 2:
        raise Unclear({"en": "In a few words, please: what should the assistant do, and for whom?",
                       "zh": "请用几句话说明：这个助手做什么、给谁用？"})
    return text


def _languages(answer: str) -> tuple[str, ...]:
    got = u.languages(answer)
    if got is None:
        raise Unclear({"en": "English, Chinese, or both?", "zh": "英文、中文，还是中英文都要？"})
    return got


def _docs(answer: str) -> Path:
    path = u.parse_path(answer)
    if path is None:
        raise Unclear({"en": "Which folder holds the documents? Give its path, e.g. ~/company/docs.",
                       "zh": "文档在哪个文件夹？请给出路径，例如 ~/company/docs。"})
    folder = Path(path)
    if not folder.is_dir():
        raise Unclear({"en": f"There is no folder {folder}. Check the path and give it again.",
                       "zh": f"找不到文件夹 {folder}。请检查路径后再告诉我。"})
    return folder


BASES = (u.Choice("tiny", ("the tiny one", "tiny model", "小模型", "迷你")),
         u.Choice("qwen2.5-coder-0.5b-instruct", ("0.5b", "qwen", "qwen 0.5b", "the real one", "real model", "千问", "通义")))
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def _base_model(answer: str) -> str:
    """"tiny", a model `onboard base fetch` knows, a model folder, a .gguf file, or a Hub id in the local cache."""
    text = answer.strip().strip("\"'“”‘’`")
    if _HUB_ID.match(text) and not Path(text).expanduser().exists():  # a Hub id, before "qwen" reads as a choice
        from training.base_model import hub_snapshot

        if hub_snapshot(text) is None:
            raise Unclear({"en": f"{text} is not in this machine's Hugging Face cache, and Onboard does not download "
                                 "from the Hub: give a model folder or a .gguf file, or choose tiny or the 0.5B.",
                           "zh": f"本机的 Hugging Face 缓存里没有 {text}，Onboard 也不会从 Hub 下载："
                                 "请给出模型文件夹或 .gguf 文件，或者选 tiny 或 0.5B。"})
        return text
    path = u.parse_path(answer)
    got = u.choice(answer, BASES) if path is None else None
    if got is not None:
        return got
    if path is None:
        raise Unclear({"en": "Please choose 1 (tiny) or 2 (the 0.5B), or give a model folder or a .gguf file.",
                       "zh": "请选 1（tiny）或 2（0.5B），或者给出模型文件夹或 .gguf 文件的路径。"})
    model = Path(path).expanduser()
    if model.is_file() and model.suffix.lower() == ".gguf":
        return str(model)
    if (model / "config.json").is_file():
        return str(model)
    what = "no such file or folder" if not model.exists() else "not a model (no config.json, not a .gguf file)"
    what_zh = "不存在" if not model.exists() else "不是模型（没有 config.json，也不是 .gguf 文件）"
    raise Unclear({"en": f"{model}: {what}. Give a Hugging Face model folder or a .gguf file, or choose tiny.",
                   "zh": f"{model}：{what_zh}。请给出 Hugging Face 模型文件夹或 .gguf 文件，或者选 tiny。"})


def _hardware(answer: str) -> Hardware:
    """The GPUs the user says the plan trains on ("两张 24G 的卡", "cpu only")."""
    got = u.gpus(answer)
    if got is None or (got.count > 0 and got.memory_gib is None):
        raise Unclear({"en": "How many GPUs, and how much memory each? For example \"2 x 24 GB\" or \"CPU only\".",
                       "zh": "有几张显卡，每张多少显存？例如“两张 24G 的卡”或“只有 CPU”。"})
    if got.count == 0:
        return Hardware(device="cpu", memory_gib=_ram_gib())
    return Hardware(device="cuda", gpus=got.count, gpu_memory_gib=got.memory_gib, memory_gib=_ram_gib())


def _ram_gib() -> float:
    import os

    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def _choice(options: tuple[u.Choice, ...]) -> Callable[[str], str]:
    names = " / ".join(o.key for o in options)

    def read(answer: str) -> str:
        got = u.choice(answer, options)
        if got is None:
            raise Unclear({"en": f"Please choose one: {names} (a name or its number).",
                           "zh": f"请选一个：{names}（名称或序号）。"})
        return got

    return read


def _hours(answer: str) -> float:
    got = u.quantity(answer, "duration")
    if got is None or got.value <= 0:
        raise Unclear({"en": "How long may training take? For example \"2 hours\" or \"90 minutes\".",
                       "zh": "训练最多可以用多长时间？例如“两个小时”或“90分钟”。"})
    return got.value


def _yes(answer: str) -> bool:
    got = u.yes_no(answer)
    if got is None:
        raise Unclear({"en": "Yes or no?", "zh": "要还是不要？"})
    return got


QUESTIONS: tuple[Question, ...] = (
    Question("purpose", {"en": "What should the assistant do, and who will ask it questions?",
                         "zh": "这个助手要做什么？谁会向它提问？"}, _text,
             {"en": "I need this in your words.", "zh": "这一项需要你来描述。"}),
    Question("languages", {"en": "Which languages will people write in: English, Chinese, or both?",
                           "zh": "用户会用什么语言提问：英文、中文，还是中英文都有？"}, _languages,
             {"en": "Both: Onboard builds its data and evaluation in English and Chinese alike.",
              "zh": "中英文都要：Onboard 的数据和评测对中英文一视同仁。"}),
    Question("docs", {"en": "Where are the documents the assistant should know? (a folder path)",
                      "zh": "助手需要掌握的文档放在哪里？（文件夹路径）"}, _docs,
             {"en": "There is no default folder: the documents are yours.", "zh": "没有默认文件夹：文档需要你提供。"}),
    Question("base_model", {"en": "Which base model should learn your documents? 1. tiny (built here in a minute: "
                                  "shows the whole pipeline, but its answers are poor), 2. qwen2.5-coder-0.5b-instruct "
                                  "(a real small model, English and Chinese; fetched once, 491 MB), or the path of a "
                                  "model folder or a .gguf file",
                            "zh": "用哪个基座模型来学习你的文档？1. tiny（在本机一分钟内建好，能跑通全流程，但回答质量差）"
                                  "2. qwen2.5-coder-0.5b-instruct（真正的小模型，支持中英文；首次需下载 491 MB），"
                                  "或者给出模型文件夹或 .gguf 文件的路径"},
             _base_model,
             {"en": "tiny: it trains in minutes on any machine, so you see every step work before spending hours; "
                    "for answers worth serving, choose the 0.5B or your own model.",
              "zh": "tiny：任何机器上几分钟就能训练完，先看到每一步都能跑通，再花几个小时训练；"
                    "要上线使用，请选 0.5B 或你自己的模型。"}),
    Question("stage", {"en": "How should it learn? 1. sft (questions and answers), 2. raft (answers from "
                             "retrieved passages), 3. dpo (preferences), 4. cpt (raw documents)",
                       "zh": "用哪种方式训练？1. sft（问答）2. raft（检索增强）3. dpo（偏好）4. cpt（继续预训练）"},
             _choice(STAGES),
             {"en": "sft: questions and answers made from your documents are the surest first step; "
                    "ask \"what is RAFT?\" to compare.",
              "zh": "sft：用文档生成的问答来训练，是最稳妥的第一步；可以问“RAFT 是什么”来比较。"}),
    Question("time_budget_hours", {"en": "How long may training take on this machine?",
                                   "zh": "训练最多可以用多长时间？"}, _hours,
             {"en": "No limit: training takes as long as its plan needs.",
              "zh": "不设上限：训练按计划需要的时间进行。"}),
    Question("evaluate", {"en": "Compare the model before and after training before serving it? (recommended)",
                          "zh": "上线前要对比训练前后的效果吗？（推荐）"}, _yes,
             {"en": "Yes: a model is served only when the evaluation shows it did not get worse.",
              "zh": "要：只有评测证明模型没有变差，才会上线。"}),
    Question("deploy", {"en": "Where should it run? 1. local (this machine), 2. compose (Docker), "
                              "3. kubernetes, 4. none",
                        "zh": "部署到哪里？1. local（本机）2. compose（Docker）3. kubernetes 4. none（暂不部署）"},
             _choice(DEPLOYS),
             {"en": "local: a server on this machine, the quickest to try.", "zh": "local：在本机启动服务，最快上手。"}),
)

BY_SLOT = {q.slot: q for q in QUESTIONS}
READERS: dict[str, Callable[[str], object]] = {**{q.slot: q.read for q in QUESTIONS}, "hardware": _hardware}
"""How to read a value of each slot the user can set: the questions' slots, and the hardware (detected, not
asked, but corrected when training is to run elsewhere: "actually I have two 24G cards")."""
