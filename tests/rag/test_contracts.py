"""The typed contracts at the bottom of the dependency graph: the workspace layout and the model card."""

import json

import pytest

from rag.errors import BadContract
from rag.model_card import CARD_FILE, SCHEMA_VERSION, DatasetCard, ModelCard, RagContract
from rag.prompt import PROMPT_LAYOUT
from rag.workspace import Workspace, dataset_card_beside


def _merged_card() -> ModelCard:
    return ModelCard(kind="onboard-merged", parameters=10, eos_token_ids=[2],
                     rag=RagContract(context_chunks=4, prompt_layout=PROMPT_LAYOUT, embedding_model="m"))


def test_a_card_round_trips_and_a_folder_without_one_has_none(tmp_path):
    _merged_card().write(tmp_path)
    card = ModelCard.read(tmp_path)
    assert card.rag.context_chunks == 4 and card.schema_version == SCHEMA_VERSION
    assert ModelCard.read(tmp_path / "elsewhere") is None


def test_an_unknown_schema_version_is_refused_naming_the_file(tmp_path):
    _merged_card().write(tmp_path)
    f = tmp_path / CARD_FILE
    data = json.loads(f.read_text())
    f.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(BadContract, match=rf"{CARD_FILE}: schema_version {SCHEMA_VERSION + 1}.*reads version"):
        ModelCard.read(tmp_path)
    f.write_text(json.dumps({"training_run": {"dataset": {"context_chunks": 4}}}))  # the old untyped layout
    with pytest.raises(BadContract, match="schema_version None"):
        ModelCard.read(tmp_path)


def test_a_missing_field_is_named_with_the_file(tmp_path):
    f = tmp_path / CARD_FILE
    f.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "kind": "onboard-merged",
                             "rag": {"prompt_layout": PROMPT_LAYOUT}}))
    with pytest.raises(BadContract, match=r"onboard_model\.json: rag\.context_chunks: Field required"):
        ModelCard.read(tmp_path)
    f.write_text("{broken")
    with pytest.raises(BadContract, match="not readable JSON"):
        ModelCard.read(tmp_path)


def test_a_dataset_card_keeps_its_counts_beside_the_contract(tmp_path):
    ws = Workspace(tmp_path)
    DatasetCard(kind="sft", docs="d", rag=RagContract(context_chunks=3, prompt_layout=PROMPT_LAYOUT),
                clean={"steps": []}).write(ws.dataset_card("sft"))
    card = DatasetCard.read(dataset_card_beside(ws.train_file("sft")))
    assert card.rag.context_chunks == 3 and card.model_extra == {"clean": {"steps": []}}
    assert DatasetCard.read(ws.dataset_card("cpt")) is None


def test_the_workspace_is_the_one_place_that_knows_the_layout(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.train_file("raft") == tmp_path / "data" / "raft" / "train.jsonl"
    assert ws.run_dir("dpo") == tmp_path / "runs" / "dpo" and ws.merged_model == tmp_path / "models" / "merged"
    assert ws.default_base() is None and not ws.has_index
    (ws.tiny_base).mkdir(parents=True)
    (ws.tiny_base / "config.json").write_text("{}")
    assert ws.default_base() == str(ws.tiny_base)
