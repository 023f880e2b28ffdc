"""What a context meant to lack the answer must not hold (training/data/decline.py): real FAQ shapes,
taken from the Debian FAQ where the held-out "unanswerable" questions were answered anyway (bench/RESULTS.md)."""

from rag.chunking import Chunk
from rag.loaders import Document
from rag.retrieval import Hit
from training.data.decline import may_answer
from training.data.seeds import Seed

SECTION = "第 6 章 Debian 档案库 > 6.10. pool 目录里有什么？"
ANSWER = "软件包位于一个很大的“池（pool）”中，依源码包的名称进行组织。为了便于管理，pool 按照区和源码包名的首字母进行分类。"


def _seed() -> Seed:
    doc = Document(id="d1", source="zh/ftparchives.html", title="Debian 档案库", text=ANSWER, language="zh")
    chunk = Chunk(id="c1", doc_id="d1", source=doc.source, title=doc.title, heading_path=SECTION, text=ANSWER,
                  start=0, end=len(ANSWER), language="zh")
    return Seed(question="pool 目录里有什么？", answer=ANSWER, chunk=chunk, doc=doc, rule="question-heading")


def _hit(heading_path: str, text: str, doc_id: str = "d1") -> Hit:
    return Hit("h", "zh/ftparchives.html", heading_path, text, 1.0, {"doc_id": doc_id})


def test_a_neighbour_that_does_not_answer_may_stand_in_the_context():
    hit = _hit("第 6 章 Debian 档案库 > 6.9. 源代码在哪里？", "Debian 系统的一切都有源代码。源代码在 dists 目录旁的档案库中。")
    assert may_answer(hit, _seed()) is None


def test_the_chapter_a_cross_reference_and_a_restatement_may_answer():
    seed = _seed()
    assert may_answer(_hit("第 6 章 Debian 档案库", "本章介绍 Debian 档案库的结构。"), seed) == "the section's parent"
    assert may_answer(_hit("第 6 章 Debian 档案库", "本章介绍档案库。", doc_id="other"), seed) is None, \
        "the same heading in another document is not the parent"
    xref = _hit("第 6 章 Debian 档案库 > 6.7. Debian 档案库中的那些目录都是干什么用的？",
                "pool 目录包含实际的软件包，参见 第 6.10 节 “ pool 目录里有什么？” 。")
    assert may_answer(xref, seed) == "names the question"
    restated = _hit("第 7 章 软件包 > 7.1. 软件包放在哪里？",
                    "所有软件包位于一个很大的“池（pool）”中，依源码包的名称进行组织，并按区分类。")
    assert may_answer(restated, seed) == "states much of the answer"
