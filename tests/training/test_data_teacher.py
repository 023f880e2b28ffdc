"""`onboard data build` with a teacher LLM: real HTTP to a local OpenAI-compatible server (scripted,
see teacher_server.py), the real CLI killed midway and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.prompt import strip_citations
from tests.training.teacher_server import TeacherServer, _sentences
from training.data.build import DataBuildConfig, run
from training.data.teacher import TeacherConfig
from training.data.teacher_cache import text_sha

ROOT = Path(__file__).resolve().parents[2]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def teacher():
    with TeacherServer() as s:
        yield s


def _cfg(url):
    return TeacherConfig(base_url=url, model="scripted", questions_per_chunk=2, concurrency=2, max_retries=1,
                         timeout_s=10)


def test_sft_and_raft_with_a_teacher(workspace, teacher, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("chroma", "bm25", "ingest.json"):  # share the session's index, keep our own data/
        src = workspace / name
        if src.exists():
            (ws / name).symlink_to(src)
    sft = run(DataBuildConfig(workspace=ws, kind="sft", teacher=_cfg(teacher.url)))
    rows = _rows(sft.train_file) + _rows(sft.test_file)
    taught = [r for r in rows if r["meta"]["rule"] == "teacher:scripted"]
    assert taught and {r["meta"]["language"] for r in taught} == {"en", "zh"}
    assert sft.stats.model_extra["teacher"]["chunks_generated"] > 0
    assert any(r["meta"]["rule"] == "qa-markers" for r in rows)  # rule pairs are kept alongside

    n = len(teacher.script.requests)
    raft = run(DataBuildConfig(workspace=ws, kind="raft", teacher=_cfg(teacher.url)))
    assert len(teacher.script.requests) == n  # the cache answered: no new requests
    rr = [r for r in _rows(raft.train_file) + _rows(raft.test_file) if r["meta"]["rule"] == "teacher:scripted"]
    assert rr and all(r["messages"][-1]["content"].startswith("##Reason") for r in rr)
    assert all("##Answer:" in r["messages"][-1]["content"] for r in rr)


def _linked_ws(workspace, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("chroma", "bm25", "ingest.json"):  # share the session's index, keep our own data/
        if (workspace / name).exists():
            (ws / name).symlink_to(workspace / name)
    return ws


def test_the_teacher_rewords_the_rule_questions_once_and_the_rules_fill_in(workspace, teacher, tmp_path):
    ws = _linked_ws(workspace, tmp_path)
    r = run(DataBuildConfig(workspace=ws, kind="sft", teacher=_cfg(teacher.url), paraphrases=3, test_fraction=0))
    rows = _rows(r.train_file)
    found = {r_["meta"]["question_id"]: r_ for r_ in rows if r_["meta"].get("wording") == 0
             and not r_["meta"]["rule"].startswith("teacher:") and "question_id" in r_["meta"]}
    asked = [x for x in teacher.script.requests if x["kind"] == "paraphrase"]
    assert found and len(asked) == len({x["question"] for x in asked})  # each question asked once
    assert {x["question"] for x in asked} == {x["messages"][1]["content"] for x in found.values()}
    by = r.stats.model_extra["questions"]["paraphrased_by"]
    assert by["by"] == "teacher:scripted" and by["llm"] == 2 * by["asked"] and by["rules"] == by["asked"]
    for qid, first in found.items():
        q, lang = first["messages"][1]["content"], first["meta"]["language"]
        words = {x["meta"]["wording"]: x["messages"][1]["content"] for x in rows if x["meta"].get("question_id") == qid}
        taught = [w for w in words.values() if w.startswith(("Excuse me,", "One more thing,", "打扰一下，", "再问一下，"))]
        assert len(taught) == 2, words  # the teacher's two, not its copy of the question nor its preamble
        assert len(words) == 4 and q in words.values()  # the question, and the rules' third wording
        if lang == "zh":  # its English line for a Chinese question is not kept
            assert not any(w.startswith("Excuse me") for w in words.values())

    short = r.stats.model_extra["teacher_answers"]  # long rule-made answers: the teacher's grounded short answer
    assert short["shortened"] > 0 and short["shortened"] + short["kept"] == short["asked"] == short["requests"]
    sent = [x for x in teacher.script.requests if x["kind"] == "answer" and x["context"] not in
            {c for c in (y["context"] for y in teacher.script.requests if y["kind"] == "questions")}]
    assert len(sent) == short["asked"]
    trained = {(x["messages"][1]["content"], strip_citations(x["messages"][-1]["content"])) for x in rows}
    now_short = [x for x in sent if any((x["question"], one) in trained
                                        for one in _sentences(x["context"]) if one != x["context"])]
    assert len(now_short) == short["shortened"]  # trained on the teacher's one sentence, not the whole text

    teacher.script.reset()
    again = run(DataBuildConfig(workspace=ws, kind="raft", teacher=_cfg(teacher.url), paraphrases=3, test_fraction=0))
    assert teacher.script.requests == []  # questions and paraphrases both came from the caches
    assert again.stats.model_extra["questions"]["paraphrased_by"]["from_cache"] == by["asked"]


def test_a_killed_build_resumes_without_asking_again(workspace, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("chroma", "bm25", "ingest.json"):
        if (workspace / name).exists():
            (ws / name).symlink_to(workspace / name)
    with TeacherServer() as server:
        server.script.delay_s = 0.15
        env = {**os.environ, "ONBOARD_TEACHER_BASE_URL": server.url, "ONBOARD_TEACHER_MODEL": "scripted",
               "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "data", "build", "-w", str(ws), "--kind", "sft"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cache = ws / "data" / "teacher" / "cache.jsonl"
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if cache.exists() and len(cache.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the build finished before it could be killed"
        done = {json.loads(line)["text_sha"] for line in cache.read_text().splitlines() if line.endswith("}")}

        server.script.delay_s = 0
        server.script.reset()
        r = run(DataBuildConfig(workspace=ws, kind="sft", teacher=_cfg(server.url)))
        assert r.stats.model_extra["teacher"]["chunks_from_cache"] == len(done) > 0
        assert r.stats.model_extra["teacher"]["chunks_generated"] > 0
        asked = {text_sha(x["context"]) for x in server.script.requests if x["kind"] != "paraphrase"}
        assert asked and not asked & done  # finished chunks were not asked for again
        assert "teacher:scripted" in r.train_file.read_text() + r.test_file.read_text()


@pytest.mark.slow  # ~50 s: the merged model answers every prompt; DPO pairs without a teacher are in test_data_build
def test_dpo_prefers_the_teachers_answer_over_the_models(workspace, merged_model, teacher, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("chroma", "bm25", "ingest.json"):
        if (workspace / name).exists():
            (ws / name).symlink_to(workspace / name)
    r = run(DataBuildConfig(workspace=ws, kind="dpo", teacher=_cfg(teacher.url), base_model=str(merged_model),
                            test_fraction=0))
    rows = _rows(r.train_file)
    taught = [x for x in rows if x["meta"]["rule"] == "teacher:scripted-vs-model"]
    assert taught and all(x["chosen"][0]["content"] != x["rejected"][0]["content"] for x in taught)
