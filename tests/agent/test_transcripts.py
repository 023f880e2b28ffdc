"""Whole conversations with `onboard chat`, as a person has them: from "hello" to an evaluated model served on
this machine and answering a client, in English and in Chinese, through the real CLI in a subprocess with
scripted input; with a greeting, a folder that is not there, a question back and a correction on the way.

The English one runs on a copy of the shared test workspace (tiny base built, documents ingested, data built);
the Chinese one starts from an empty workspace and builds everything (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agent.interview.plan import load

ROOT = Path(__file__).resolve().parents[2]


def _converse(ws: Path, lines: list[str], lang: str, tmp_path: Path) -> tuple[str, str]:
    """Run the chat with `lines` as its input until the server it starts answers; return (the chat's output,
    the served model's answer to a question about returns)."""
    from openai import OpenAI

    port = _free_port()
    env = {**os.environ, "ONBOARD_PORT": str(port), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "COLUMNS": "200"}
    env.pop("ONBOARD_AGENT_BASE_URL", None)
    out_file = tmp_path / f"chat-{lang}.log"
    with out_file.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "chat", "-w", str(ws), "--lang", lang],
                                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                text=True)
        proc.stdin.write("".join(f"{x}\n" for x in lines))
        proc.stdin.flush()  # left open: the chat waits at the server, not at the end of its input
        try:
            deadline = time.monotonic() + 1500
            while True:
                assert proc.poll() is None, out_file.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, out_file.read_text()
                time.sleep(1)
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x")
            r = client.chat.completions.create(
                model=client.models.list().data[0].id, max_tokens=32,
                messages=[{"role": "user", "content": "How long do I have to return an item?"}])
            answer = r.choices[0].message.content or ""
            assert (r.model_extra or {}).get("sources"), "the served model answered without retrieval"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            proc.stdin.close()
    return out_file.read_text(), answer


def test_an_english_conversation_from_hello_to_a_served_model(tmp_path, workspace, tiny_base, docs_dir):
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    shutil.copytree(tiny_base, ws / "base" / "tiny")
    said, answer = _converse(ws, [
        "hello",
        "Answer our shop's customers about returns and payments",
        "English and Chinese",
        "/no/such/folder",
        str(docs_dir),
        "what is LoRA?",
        "the tiny one",
        "1",
        "no limit",              # not a duration: asked again
        "default",
        "yes",
        "here",
        "actually make it English only",
        "yes",                   # the plan
        "yes",                   # the dataset
        "yes",                   # start training
        "yes",                   # serve
    ], "en", tmp_path)
    for shown in ["Hello! I will set up an assistant", "There is no folder /no/such/folder", "LoRA (low-rank",
                  "How long may training take?", "Changed: languages = en", "Recommended training:",
                  "Train on this dataset?", "training will take about", "trained ", "merged into",
                  "evaluation (held-out questions):", "tuned+rag", "Serve it now on this machine?"]:
        assert shown in said, f"{shown!r} not in:\n{said}"
    plan = load(ws / "plan.yaml")
    assert plan.languages == ("en",) and plan.docs == docs_dir and plan.base_model == "tiny"
    assert plan.deploy == "local" and plan.time_budget_hours is None and plan.method == "lora"
    assert (ws / "reports" / "plan" / "eval.md").is_file() and answer is not None


@pytest.mark.slow
def test_a_chinese_conversation_from_an_empty_workspace_to_a_served_model(tmp_path, docs_dir):
    ws = tmp_path / "ws"
    said, answer = _converse(ws, [
        "你好",
        "回答网店顾客关于退货和付款的问题",
        "中英文都要",
        f"文档在 {docs_dir} 目录下",
        "tiny 是什么意思？",
        "1",
        "什么是 RAFT？",
        "第一个",
        "半个小时",
        "要",
        "本机",
        "好的",                   # the plan
        "好的",                   # the dataset
        "开始吧",                 # start training
        "好",                     # serve
    ], "zh", tmp_path)
    for shown in ["你好！我来帮你搭建", "推荐的训练设置：", "tiny 模型是", "构建 tiny 基座模型", "已导入", "用这个数据集训练吗？",
                  "训练预计需要约", "训练完成", "已合并为", "评测（留出的问题）：", "现在在本机启动服务吗？"]:
        assert shown in said, f"{shown!r} not in:\n{said}"
    plan = load(ws / "plan.yaml")
    assert plan.languages == ("en", "zh") and plan.time_budget_hours == 0.5 and plan.stage == "sft"
    assert (ws / "reports" / "plan" / "eval.md").is_file() and answer is not None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
