import json

from rag import RagConfig
from rag.embeddings import Embedder
from rag.store import get_collection


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_examples_trace_to_indexed_chunks_and_carry_the_serving_context(workspace):
    train, test = _rows(workspace / "data" / "train.jsonl"), _rows(workspace / "data" / "test.jsonl")
    assert len(train) >= 10 and len(test) >= 1
    col = get_collection(RagConfig(workspace=workspace), Embedder().name)
    for ex in train + test:
        meta, msgs = ex["meta"], ex["messages"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
        chunk = col.get(ids=[meta["chunk_id"]], include=["documents", "metadatas"])
        assert chunk["ids"], f"chunk {meta['chunk_id']} is not in the index"
        assert chunk["metadatas"][0]["source"] == meta["source"]
        assert msgs[1]["content"] in chunk["documents"][0]  # the question comes from that chunk
        assert "Context:\n[1] " in msgs[0]["content"]
    stats = json.loads((workspace / "data" / "stats.json").read_text())
    assert stats["by_language"]["zh"] >= 5 and stats["by_language"]["en"] >= 5
    assert set(stats["by_rule"]) == {"qa-markers", "question-heading"}


def test_training_prompt_is_exactly_what_the_server_builds(workspace):
    """The model must be trained on the prompt it will be served: same retriever, same k, same layout."""
    from rag import Retriever, build_rag_messages
    from serving.config import ServeConfig

    k = ServeConfig(model=workspace).rag_k
    retriever = Retriever(RagConfig(workspace=workspace))
    for ex in _rows(workspace / "data" / "train.jsonl")[:5]:
        question = ex["messages"][1]["content"]
        served = build_rag_messages([{"role": "user", "content": question}], retriever.search(question, k))
        assert served == ex["messages"][:-1]
