"""The interview's questions: for each slot of the plan, what to ask (English and Chinese), how to read the
answer without an LLM, and why the default is the default.

A reader returns the slot's value, or raises `Unclear` with the re-ask in both languages; it never guesses.
`answer_turn` (turn.py) decides whether an answer is a value, a default, a correction or a question back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.interview import understand as u


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


def _text(answer: str) -> str:
    text = answer.strip()
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
