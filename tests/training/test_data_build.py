import json
import re
import shutil
from pathlib import Path

import pytest

from rag import RagConfig, Retriever, build_rag_messages
from rag.embeddings import Embedder
from rag.model_card import DatasetCard
from rag.prompt import PROMPT_LAYOUT
from rag.store import get_collection
from rag.workspace import Workspace
from training.data.build import DataBuildConfig, run
from training.data.rules import RULES
from training.errors import BadConfig, NoExamples, OutputExists

TEMPLATE_RULES = {"definition", "policy"}


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _first_sentence(text):
    return re.split(r"(?<=[.!?])\s+|(?<=[。！？])", text)[0]


def _chunk(col, chunk_id):
    got = col.get(ids=[chunk_id], include=["documents", "metadatas"])
    assert got["ids"], f"chunk {chunk_id} is not in the index"
    return got["documents"][0], got["metadatas"][0]


@pytest.fixture(scope="session")
def raft_data(workspace):
    return run(DataBuildConfig(workspace=workspace, kind="raft", rules=RULES, force=True))  # the CLI may have built one


def test_sft_examples_trace_to_indexed_chunks_and_carry_the_serving_context(workspace):
    train = _rows(workspace / "data" / "sft" / "train.jsonl")
    test = _rows(workspace / "data" / "sft" / "test.jsonl")
    assert len(train) >= 10 and len(test) >= 1
    col = get_collection(RagConfig(workspace=workspace), Embedder().name)
    for ex in train + test:
        meta, msgs = ex["meta"], ex["messages"]
        assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
        assert ("Context:\n[1] " in msgs[0]["content"]) == bool(meta["retrieved"]), "as the server builds it"
        if meta.get("declines"):  # an out-of-domain question may retrieve nothing, as served
            continue
        assert meta["retrieved"]
        text, chunk_meta = _chunk(col, meta["chunk_id"])
        assert chunk_meta["source"] == meta["source"] and chunk_meta["doc_id"] == meta["doc_id"]
        assert meta["chunk_id"] in meta["retrieved"], "the answer's chunk is always in the context"
        if meta["rule"] in TEMPLATE_RULES:  # templated question; the answer is the document's sentence
            assert _first_sentence(msgs[2]["content"]) in text, meta
        elif meta["wording"] == 0:  # the question is the document's own
            assert msgs[1]["content"] in text, meta
    stats = DatasetCard.read(Workspace(workspace).dataset_card("sft"))
    assert stats.by_language["zh"] >= 5 and stats.by_language["en"] >= 5
    assert {"qa-markers", "question-heading", "definition", "policy", "unanswerable", "out-of-domain"} <= set(
        stats.by_rule)
    assert stats.model_extra["questions"]["paraphrases"] > 0
    assert stats.rag.context_chunks == 3 and stats.rag.prompt_layout == PROMPT_LAYOUT
    assert [s["name"] for s in stats.model_extra["clean"]["steps"]][:3] == ["utf8", "empty", "exact-dedup"]


def test_rule_pairs_in_both_languages(workspace):
    rows = _rows(workspace / "data" / "sft" / "train.jsonl") + _rows(workspace / "data" / "sft" / "test.jsonl")
    qa = {(r["messages"][1]["content"], r["meta"]["rule"]) for r in rows}
    assert ("What is Oak Circle?", "definition") in qa
    # returns.md may be held out, where one wording of each question is kept (often a paraphrase)
    assert any(rule == "policy" and "what does the returns policy say about eligibility?" in q.lower()
               for q, rule in qa)
    assert ("退货政策中关于退货条件有什么规定？", "policy") in qa or any(
        r["meta"]["rule"] == "policy" and r["meta"]["language"] == "zh" for r in rows)


def test_split_holds_out_whole_documents_per_language(workspace):
    train = _rows(workspace / "data" / "sft" / "train.jsonl")
    test = _rows(workspace / "data" / "sft" / "test.jsonl")
    train_docs = {r["meta"]["doc_id"] for r in train}
    test_docs = {r["meta"]["doc_id"] for r in test}
    assert test_docs and not train_docs & test_docs
    assert not {r["meta"].get("chunk_id") for r in train} & {r["meta"].get("chunk_id") for r in test} - {None}
    assert {r["meta"]["language"] for r in test} == {"en", "zh"}  # stratified: each language has test docs
    assert {r["meta"]["language"] for r in train} == {"en", "zh"}  # and keeps training docs


def test_training_prompt_is_exactly_what_the_server_builds(workspace):
    """The model must be trained on the prompt it will be served: same retriever, same k, same layout."""
    from serving.settings import ServeSettings, resolve_rag_k

    k = resolve_rag_k(ServeSettings(model=workspace))
    retriever = Retriever(RagConfig(workspace=workspace))
    rows = [r for r in _rows(workspace / "data" / "sft" / "train.jsonl")
            if not r["meta"].get("oracle_added") and r["meta"]["rule"] != "unanswerable"]
    assert len(rows) >= 5
    for ex in rows[:5] + [r for r in rows if r["meta"]["rule"] == "out-of-domain"][:2]:
        question = ex["messages"][1]["content"]
        served = build_rag_messages([{"role": "user", "content": question}], retriever.search(question, k))
        assert served == ex["messages"][:-1]


def test_raft_uses_the_retrievers_hard_negatives_and_the_serving_layout(workspace, raft_data):
    rows = [r for r in _rows(raft_data.train_file) + _rows(raft_data.test_file) if not r["meta"].get("declines")]
    retriever = Retriever(RagConfig(workspace=workspace))
    col = get_collection(RagConfig(workspace=workspace), Embedder().name)
    with_oracle = hard_total = 0
    for ex in rows:
        meta, msgs = ex["meta"], ex["messages"]
        question = msgs[1]["content"]
        assert len(meta["retrieved"]) == 4  # oracle + 3 distractors, or 4 distractors
        top = [h.chunk_id for h in retriever.search(question, 12)]
        assert meta["chunk_id"] not in meta["distractors"]
        hard = len(meta["distractors"]) - meta["random_distractors"]
        hard_ids = [c for c in meta["distractors"] if c in top]
        assert len(hard_ids) >= hard, "distractors must be the retriever's own top hits"
        hard_total += hard
        # the prompt is built by the serving function from exactly these chunks, in this order
        hits = []
        for cid in meta["retrieved"]:
            text, m = _chunk(col, cid)
            hits.append(type("H", (), {"source": m["source"], "heading_path": m["heading_path"], "text": text}))
        assert msgs[:-1] == build_rag_messages([{"role": "user", "content": question}], hits)
        answer = msgs[-1]["content"]
        if meta["oracle_in_context"]:
            with_oracle += 1
            assert meta["retrieved"][meta["oracle_position"] - 1] == meta["chunk_id"]
            assert answer.endswith(f"[{meta['oracle_position']}]")  # cites the oracle
        else:
            assert meta["chunk_id"] not in meta["retrieved"] and not answer.endswith("]")
    share = with_oracle / len(rows)
    assert 0.6 <= share < 1.0, share  # P = 0.8, some examples without the oracle
    assert raft_data.stats.rag.context_chunks == 4
    assert hard_total >= 0.7 * sum(len(r["meta"]["distractors"]) for r in rows)  # mostly the retriever's


def test_cpt_corpus_drops_boilerplate_and_packs_blocks(tmp_path, docs_dir, embedder):
    from rag import ingest

    docs = tmp_path / "docs"
    shutil.copytree(docs_dir, docs)
    footer = "Lumen & Oak Inc., 12 Market Street, Columbus. Follow us on Instagram."
    for f in sorted(docs.rglob("*.md"))[:4]:
        f.write_text(f.read_text() + f"\n\n{footer}\n")
    ws = tmp_path / "ws"
    ingest(RagConfig(workspace=ws), docs, embedder=embedder)
    r = run(DataBuildConfig(workspace=ws, kind="cpt", block_tokens=120, test_fraction=0))
    rows = _rows(r.train_file)
    assert rows and all(set(x) == {"text", "meta"} for x in rows)
    text = "\n".join(x["text"] for x in rows)
    assert footer not in text and "within 30 days of delivery" in text and "退货" in text
    assert all(embedder.count_tokens(x["text"]) <= 130 for x in rows)  # blocks respect the budget (tokenizer: MiniLM)
    col = get_collection(RagConfig(workspace=ws), embedder.name)
    ids = [i for x in rows for i in x["meta"]["chunk_ids"]]
    assert ids and len(col.get(ids=sorted(set(ids)))["ids"]) == len(set(ids))
    assert r.stats.model_extra["cpt"]["boilerplate_lines_dropped"] >= 4


def test_pii_is_masked_when_asked(workspace):
    from training.data.clean import CleanConfig

    try:
        r = run(DataBuildConfig(workspace=workspace, kind="sft", rules=RULES, force=True,
                                clean=CleanConfig(mask_pii=True)))
        text = (r.train_file.read_text() + r.test_file.read_text())
        assert "support@lumenoak.example" not in text and "[EMAIL]" in text
    finally:
        run(DataBuildConfig(workspace=workspace, kind="sft", rules=RULES, force=True))  # restore the shared dataset


def test_no_pairs_and_no_teacher_says_what_to_do(tmp_path, embedder):
    from rag import ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nThe office plants were watered.\n")
    ws = tmp_path / "ws"
    ingest(RagConfig(workspace=ws), docs, embedder=embedder)
    with pytest.raises(NoExamples, match="teacher.*--extra"):
        run(DataBuildConfig(workspace=ws, kind="sft"))


def test_user_files_in_any_chat_format_join_the_training_split(workspace, tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(json.dumps({"conversations": [{"from": "human", "value": "Do you sell lamps?"},
                                               {"from": "gpt", "value": "Yes, many."}]}) + "\n")
    r = run(DataBuildConfig(workspace=workspace, kind="raft", extra_files=[f], force=True))
    rows = _rows(r.train_file)
    mine = [x for x in rows if x["meta"]["rule"] == "user-file"]
    assert len(mine) == 1 and mine[0]["messages"][-1]["content"] == "Yes, many."
    assert not any(x["meta"]["rule"] == "user-file" for x in _rows(r.test_file))


def test_a_models_answer_may_not_start_blank(tiny_base):
    from training.base_model import load_tokenizer
    from training.data.dpo import _blank_starts

    tok = load_tokenizer(str(tiny_base))
    blank = _blank_starts(tok)
    assert tok.encode("\n", add_special_tokens=False)[0] in blank
    assert all(not tok.decode([i]).strip() for i in blank) and not set(blank) & set(tok.encode("the", add_special_tokens=False))


def test_dpo_pairs_good_answers_with_the_models_own(workspace, merged_model):
    fb = workspace / "feedback" / "feedback.jsonl"
    fb.parent.mkdir(exist_ok=True)
    prompt = [{"role": "user", "content": "How long do I have to return an item?"}]
    fb.write_text("\n".join(json.dumps(x) for x in [
        {"id": "a", "messages": prompt, "response": "7 days.", "rating": "down", "correction": "30 days."},
        {"id": "b", "messages": prompt, "response": "30 days from delivery.", "rating": "up"},
        {"id": "c", "messages": prompt, "response": "One week.", "rating": "down"},
    ]) + "\n")
    try:
        r = run(DataBuildConfig(workspace=workspace, kind="dpo", base_model=str(merged_model), test_fraction=0,
                                force=True))
    finally:
        fb.unlink()
    rows = _rows(r.train_file)
    model_pairs = [x for x in rows if x["meta"]["rule"].endswith("-vs-model")]
    assert model_pairs
    for x in model_pairs:
        assert x["prompt"][-1]["role"] == "user" and x["prompt"][0]["content"].startswith(("You are", "你是"))
        assert x["chosen"][0]["content"] != x["rejected"][0]["content"]
        assert x["meta"]["doc_id"] and (x["meta"].get("chunk_id") or x["meta"]["rule"] == "out-of-domain-vs-model")
    from rag.prompt import BUILT_IN

    declined = [x for x in model_pairs if x["meta"].get("declines")]  # chosen: the decline; rejected: what it made up
    assert {x["meta"]["rule"] for x in declined} >= {"out-of-domain-vs-model"}
    assert all(x["chosen"][0]["content"] == BUILT_IN.decline_for(x["meta"]["language"]) for x in declined)
    fb_pairs = {(x["chosen"][0]["content"], x["rejected"][0]["content"]) for x in rows
                if x["meta"]["rule"].startswith("feedback")}
    assert fb_pairs == {("30 days.", "7 days."), ("30 days from delivery.", "7 days.")}
    assert r.stats.model_extra["dpo"]["feedback"]["pairs"] == {"feedback-correction": 1, "feedback-pair": 1}


def test_dpo_pairs_from_declines_only(workspace, merged_model):
    r = run(DataBuildConfig(workspace=workspace, kind="dpo", base_model=str(merged_model), test_fraction=0,
                            dpo_pairs="declines", force=True))
    # train and test: documents another dataset of this workspace holds out go to test whatever test_fraction says
    rows = _rows(r.train_file) + (_rows(r.test_file) if r.test_file and r.test_file.exists() else [])
    declines = [x for x in rows if x["meta"].get("declines")]
    assert declines and all(x["meta"]["rule"].endswith("-vs-model") for x in declines)
    info = r.stats.model_extra["dpo"]
    asked = int(info["pairs_from"].split("(")[1].split()[0])
    # only the decline questions were asked: each made a pair or was skipped, and cleaning may drop a pair
    # (the tiny model's answers can hold broken characters: the utf8 step removes those)
    made = asked - sum(info["model_answers"].values())
    removed = r.stats.model_extra["clean"]["input"] - r.stats.model_extra["clean"]["output"]
    assert made - removed <= len(declines) <= made
    # as many pairs the other way: an answer preferred over the decline (alone, the declines taught declining all)
    other = [x for x in rows if not x["meta"].get("declines")]
    assert 0 < len(other) == info["answer_over_decline"] <= len(declines)  # (the shop has fewer answerable ones)
    from rag.prompt import BUILT_IN

    for x in other:
        assert x["meta"]["rule"].endswith("-over-decline") and x["chosen"][0]["content"] != x["rejected"][0]["content"]
        assert x["rejected"][0]["content"] == BUILT_IN.decline_for(x["meta"]["language"])


def test_every_kind_holds_out_the_documents_another_dataset_holds_out(workspace):
    sft_test = {x["meta"]["doc_id"] for x in _rows(Workspace(workspace).data_dir("sft") / "test.jsonl")}
    assert sft_test
    r = run(DataBuildConfig(workspace=workspace, kind="raft", test_fraction=0.5, force=True))
    assert {x["meta"]["doc_id"] for x in _rows(r.test_file)} <= sft_test
    assert not {x["meta"]["doc_id"] for x in _rows(r.train_file)} & sft_test
    assert r.stats.model_extra["held_out_as"] == ["sft"]


def test_a_model_that_declines_in_other_words_makes_no_pair():
    from training.data.dpo import make_triples

    decline = "I cannot find this in the documents. Would you like me to connect you with a person?"
    ex = {"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": decline}],
          "meta": {"rule": "out-of-domain", "declines": True}}
    answer = {"messages": [{"role": "user", "content": "Hours?"}, {"role": "assistant", "content": decline}],
              "meta": {"rule": "question-heading"}}
    triples, counts = make_triples([ex, ex, ex, answer],
                                   [decline.upper() + " Thank you!", "I cannot find this", "Sunny, 20 degrees [2].",
                                    decline + " Thanks [1]"])
    # an invented answer to decline loses its [n]: the pair must not teach against citing; an answer keeps them
    assert [t["rejected"][0]["content"] for t in triples] == ["I cannot find this", "Sunny, 20 degrees.",
                                                              decline + " Thanks [1]"]
    assert counts["model-already-right"] == 1


def test_dpo_pairs_option_is_checked():
    with pytest.raises(BadConfig, match="--dpo-pairs must be one of all, declines"):
        DataBuildConfig(workspace=Path("w"), kind="dpo", dpo_pairs="some")
    with pytest.raises(BadConfig, match="--dpo-pairs declines is for --kind dpo"):
        DataBuildConfig(workspace=Path("w"), kind="sft", dpo_pairs="declines")
    with pytest.raises(BadConfig, match="makes no decline examples"):
        DataBuildConfig(workspace=Path("w"), kind="dpo", dpo_pairs="declines", decline_share=0, ood=False)


# ---------------------------------------------------------------- several folders; rebuilding

FAQ_X = "# FAQ\n\nQ: Do you ship to Canada?\nA: Yes, to Canada in 7 to 14 business days.\n\n" \
        "Q: Can I pay with PayPal?\nA: Yes, PayPal is accepted at checkout.\n"
FAQ_Y = "# FAQ\n\nQ: Where is the warehouse?\nA: The warehouse is in Columbus, Ohio.\n\n" \
        "Q: How do I reset my password?\nA: Use the Forgot password link on the sign-in page.\n"


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory, embedder):
    """Two folders, both holding a `faq.md`, ingested one after the other into one workspace."""
    from rag import ingest

    root = tmp_path_factory.mktemp("two")
    x, y = root / "X", root / "Y"
    for folder, faq in ((x, FAQ_X), (y, FAQ_Y)):
        folder.mkdir()
        (folder / "faq.md").write_text(faq)
    (x / "hours.md").write_text("# Hours\n\nQ: When do you open?\nA: We open at 9 am on weekdays.\n")
    ws = root / "ws"
    for folder in (x, y):
        ingest(RagConfig(workspace=ws), folder, embedder=embedder)
    return ws, x.resolve(), y.resolve()


def test_every_ingested_folder_is_used_and_same_named_files_stay_apart(two_folders):
    ws, x, y = two_folders
    r = run(DataBuildConfig(workspace=ws, kind="sft", test_fraction=0))
    rows = _rows(r.train_file)
    questions = {row["messages"][1]["content"]: row["meta"] for row in rows}
    assert {"Do you ship to Canada?", "When do you open?", "Where is the warehouse?"} <= set(questions)
    x_faq, y_faq = questions["Do you ship to Canada?"], questions["Where is the warehouse?"]
    assert x_faq["source"] == y_faq["source"] == "faq.md"  # the same path in two folders: two documents
    assert (x_faq["root"], y_faq["root"]) == (str(x), str(y)) and x_faq["doc_id"] != y_faq["doc_id"]
    col = get_collection(RagConfig(workspace=ws), Embedder().name)
    for meta in (x_faq, y_faq):  # each example's chunk is the one the index holds for its file
        _, chunk_meta = _chunk(col, meta["chunk_id"])
        assert (chunk_meta["root"], chunk_meta["doc_id"]) == (meta["root"], meta["doc_id"])
    assert r.stats.model_extra["roots"] == [str(x), str(y)]
    assert {f"{x}/faq.md", f"{y}/faq.md", f"{x}/hours.md", "out-of-domain (built-in)"} == set(
        r.stats.model_extra["by_source"])


def test_a_second_build_is_refused_without_force_and_replaced_with_it(two_folders):
    ws, x, y = two_folders
    data = Workspace(ws).data_dir("raft")
    first = run(DataBuildConfig(workspace=ws, kind="raft", test_fraction=0))
    files = sorted(data.iterdir())
    assert [f.name for f in files] == ["stats.json", "test.jsonl", "train.jsonl"]
    before = {f.name: f.read_bytes() for f in files}

    with pytest.raises(OutputExists) as e:
        run(DataBuildConfig(workspace=ws, kind="raft", docs=x))
    assert str(data) in str(e.value) and "--force" in str(e.value) and "\n" not in str(e.value)
    assert {f.name: f.read_bytes() for f in sorted(data.iterdir())} == before  # untouched

    again = run(DataBuildConfig(workspace=ws, kind="raft", docs=x, force=True, test_fraction=0))
    assert sorted(f.name for f in data.iterdir()) == ["stats.json", "test.jsonl", "train.jsonl"]  # no temp files
    rows = _rows(again.train_file)
    docs_rows = [row for row in rows if row["meta"]["rule"] != "out-of-domain"]
    assert docs_rows and {row["meta"]["root"] for row in docs_rows} == {str(x)}  # --docs: that folder only
    assert again.stats.model_extra["roots"] == [str(x)] and again.train < first.train
    assert DatasetCard.read(data / "stats.json").docs == str(x)


def test_paraphrases_stay_with_their_question_and_the_test_split_asks_each_question_once(workspace):
    train = _rows(workspace / "data" / "sft" / "train.jsonl")
    test = _rows(workspace / "data" / "sft" / "test.jsonl")
    train_q = {r["meta"]["question_id"] for r in train if "question_id" in r["meta"]}
    test_q = [r["meta"]["question_id"] for r in test if "question_id" in r["meta"]]
    assert test_q and not train_q & set(test_q), "a question and its paraphrases share one split"
    assert len(test_q) == len(set(test_q)), "one wording per held-out question"
    assert any(r["meta"]["wording"] == 1 for r in test), "held out as a customer words it"
    worded = [r for r in train if r["meta"].get("wording")]
    assert len(worded) >= len([r for r in train if r["meta"].get("wording") == 0]), "near-dedup kept them"
    from_docs = [r for r in train + test if r["meta"]["rule"] != "out-of-domain"]  # "1764 的平方根是多少？" may start with a number
    assert from_docs and not any(re.match(r"^\d+(\.\d+)*\.? ", r["messages"][1]["content"]) for r in from_docs)


def test_declines_lack_the_answer_and_offer_a_person_in_the_users_language(workspace):
    from evaluation.edge_cases.suite import load_suite
    from rag.prompt import BUILT_IN
    from training.data.decline import builtin_ood
    from training.data.raft import norm_text

    decline_text = BUILT_IN.decline_for
    rows = _rows(workspace / "data" / "sft" / "train.jsonl") + _rows(workspace / "data" / "sft" / "test.jsonl")
    col = get_collection(RagConfig(workspace=workspace), Embedder().name)
    unanswerable = [r for r in rows if r["meta"]["rule"] == "unanswerable"]
    assert unanswerable
    for r in unanswerable:
        meta = r["meta"]
        # k = 3 chunks, or fewer when the question's language has too few outside the answer's section
        assert meta["chunk_id"] not in meta["retrieved"] and 1 <= len(meta["retrieved"]) <= 3
        oracle_section = _chunk(col, meta["chunk_id"])[1]["heading_path"]
        question = norm_text(r["messages"][-2]["content"])
        for cid in meta["retrieved"]:
            text, m = _chunk(col, cid)
            assert (m["doc_id"], m["heading_path"]) != (meta["doc_id"], oracle_section)
            assert not oracle_section.startswith(m["heading_path"] + " > "), "not the section's parent"
            assert question not in norm_text(text), "no chunk that refers to the question"
        assert r["messages"][-1]["content"] == decline_text(meta["language"])
    ood = [r for r in rows if r["meta"]["rule"] == "out-of-domain"]
    assert len(ood) == len(builtin_ood({"en", "zh"})), "every built-in question survives deduplication"
    assert {r["meta"]["language"] for r in ood} == {"en", "zh"}
    assert all(r["messages"][-1]["content"] == decline_text(r["meta"]["language"]) for r in ood)
    zh = next(r for r in ood if r["meta"]["language"] == "zh")["messages"][-1]["content"]
    assert "人工" in zh
    edge = {c.question for c in load_suite()}
    assert not edge & {r["messages"][1]["content"] for r in ood}, "the evaluation's edge cases are not trained on"


def test_a_users_out_of_domain_file_is_read_and_a_bad_one_named(tmp_path):
    from training.data.decline import read_ood
    from training.errors import BadConfig

    f = tmp_path / "ood.txt"
    f.write_text("# mine\nWhat is the meaning of life?\n今天吃什么？\n", encoding="utf-8")
    got = read_ood(f)
    assert [(q.question, q.language, q.origin) for q in got] == [
        ("What is the meaning of life?", "en", "ood.txt:2"), ("今天吃什么？", "zh", "ood.txt:3")]
    with pytest.raises(BadConfig, match="missing.txt"):
        read_ood(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(BadConfig, match="empty.txt: no question"):
        read_ood(tmp_path / "empty.txt")


def test_definition_and_policy_rules_are_opt_in(workspace, docs_dir):
    """On real documents they were right in under half their pairs (bench/rule_precision.py): off by default."""
    from rag.loaders import load_file
    from training.data.rules import DEFAULT_RULES, find_pairs

    returns = load_file(docs_dir / "returns.md", docs_dir)
    assert {p.rule for p in find_pairs(returns)} >= {"policy"}
    assert DataBuildConfig(workspace=workspace).rules == DEFAULT_RULES
    assert not find_pairs(returns, DEFAULT_RULES), "a policy document needs --rules ...,policy"
    with pytest.raises(BadConfig, match="unknown rule.*glossary.*choose from qa-markers"):
        DataBuildConfig(workspace=workspace, rules=("question-heading", "glossary"))


def test_answers_cite_their_chunk_and_the_card_records_the_prompt(workspace):
    from rag.prompt import BUILT_IN, SYSTEM_PROMPTS

    rows = _rows(workspace / "data" / "sft" / "train.jsonl") + _rows(workspace / "data" / "sft" / "test.jsonl")
    answered = [r for r in rows if not r["meta"].get("declines")]
    for r in answered:
        pos = r["meta"]["retrieved"].index(r["meta"]["chunk_id"]) + 1
        assert r["messages"][-1]["content"].endswith(f" [{pos}]"), r["messages"][-1]["content"]
    for r in rows:
        lang = "zh" if r["meta"]["language"] == "zh" and re.search(r"[\u4e00-\u9fff]", r["messages"][1]["content"]) \
            else None
        if lang:
            assert r["messages"][0]["content"].startswith(SYSTEM_PROMPTS["zh"]), "a Chinese question, a Chinese prompt"
    card = DatasetCard.read(Workspace(workspace).dataset_card("sft"))
    assert card.rag.prompt_version == BUILT_IN.version


def test_the_base_model_rewords_as_a_self_teacher_cached_and_the_rules_fill_in(workspace, tiny_base, tmp_path, caplog):
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("chroma", "bm25", "ingest.json"):  # share the session's index, keep our own data/
        (ws / name).symlink_to(workspace / name)
    cfg = dict(workspace=ws, kind="sft", paraphraser="self", base_model=str(tiny_base), rules=RULES, test_fraction=0)
    with caplog.at_level("WARNING", logger="training.data.rewording"):
        r = run(DataBuildConfig(**cfg))
    by = r.stats.model_extra["questions"]["paraphrased_by"]
    assert f"self:{tiny_base.name} gave 0 usable" in caplog.text  # said, not hidden in stats.json
    cache = [json.loads(line) for line in Workspace(ws).paraphrase_cache.read_text().splitlines()]
    assert by["by"] == f"self:{tiny_base.name}" and by["asked"] == by["requests"] == len(cache) > 0
    asked = "\n".join(c["prompt"] for c in cache)
    assert all(x["messages"][1]["content"] in asked for x in _rows(r.train_file)
               if x["meta"].get("wording") == 0 and x["meta"]["rule"] in RULES)
    # the untrained tiny model writes no usable question: the rules give every paraphrase
    assert by["llm"] == 0 and 0 < by["rules"] <= r.stats.model_extra["questions"]["paraphrases"]

    again = run(DataBuildConfig(**cfg, force=True))
    by2 = again.stats.model_extra["questions"]["paraphrased_by"]
    assert by2["from_cache"] == by["asked"] and "requests" not in by2  # the model was not run again
    assert len(Workspace(ws).paraphrase_cache.read_text().splitlines()) == len(cache)
    with pytest.raises(BadConfig, match="--paraphraser self has nothing to do: --kind dpo"):
        DataBuildConfig(workspace=ws, kind="dpo", paraphraser="self")
    with pytest.raises(BadConfig, match="--paraphraser teacher but no teacher"):
        DataBuildConfig(workspace=ws, paraphraser="teacher")
