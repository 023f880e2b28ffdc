"""Whole conversations with `onboard chat`, as a person has them: from "hello" to an evaluated model served on
this machine and answering a client, in English and in Chinese, through the real CLI; with a greeting, a folder
that is not there, questions back, an answer asked again and a correction on the way.

The English one runs under a pseudo-terminal (pexpect), so prompts and progress bars render as a person sees
them, and talks to the chat while training runs in the background ("how is it going?", "pause", "continue"). It
starts from a copy of the shared test workspace (tiny base built, documents ingested, data built). The Chinese
one starts from an empty workspace and builds everything. Both are slow (`make test-all`)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pexpect
import pytest

from agent.interview.plan import load
from tests.serving.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


def _spawn(ws: Path, lang: str, port: int, log: Path) -> pexpect.spawn:
    env = {**os.environ, "ONBOARD_PORT": str(port), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "TERM": "xterm-256color"}
    env.pop("ONBOARD_AGENT_BASE_URL", None)
    child = pexpect.spawn(sys.executable, ["-m", "agent.cli", "chat", "-w", str(ws), "--lang", lang], cwd=str(ROOT),
                          env=env, encoding="utf-8", timeout=120, dimensions=(50, 160))
    child.logfile_read = log.open("w", encoding="utf-8")
    return child


def _talk(child: pexpect.spawn, script: list[tuple[str, str]]) -> None:
    """For each (what the chat says, what the user types): wait for it, then answer."""
    for expected, answer in script:
        child.expect_exact(expected)
        child.sendline(answer)


def _served_answer(port: int, child: pexpect.spawn, timeout: float = 600) -> str:
    """Wait for the server the chat started; ask it about returns; return the answer."""
    from openai import OpenAI

    wait_healthy(f"http://127.0.0.1:{port}", child.isalive, Path(child.logfile_read.name), timeout)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x")
    r = client.chat.completions.create(model=client.models.list().data[0].id, max_tokens=32,
                                       messages=[{"role": "user", "content": "How long do I have to return an item?"}])
    assert (r.model_extra or {}).get("sources"), "the served model answered without retrieval"
    return r.choices[0].message.content or ""


def _screen(log: Path) -> str:
    """What the terminal showed, without its escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", log.read_text(encoding="utf-8"))


@pytest.mark.slow  # ~200 s: the interview, the pipeline and serving have faster tests of their own in the default run
def test_an_english_conversation_from_hello_to_a_served_model_under_a_terminal(tmp_path, workspace, tiny_base,
                                                                              docs_dir):
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    shutil.copytree(tiny_base, ws / "base" / "tiny")
    port, log = free_port(), tmp_path / "chat-en.log"
    child = _spawn(ws, "en", port, log)
    try:
        _talk(child, [
            ("What should the assistant do", "hello"),
            ("Hello! I will set up", "Answer our shop's customers about returns and payments"),
            ("English, Chinese, or both?", "English and Chinese"),
            ("(a folder path)", "/no/such/folder"),
            ("There is no folder /no/such/folder", str(docs_dir)),
            ("or a .gguf file", "what is LoRA?"),
            ("LoRA (low-rank", "the tiny one"),
            ("4. cpt (raw documents)", "1"),
            ("How long may training take", "no limit"),          # not a duration: asked again
            ("\"90 minutes\"", "1 minute"),                      # shorter than 30 epochs: the steps are capped
            ("before serving it?", "yes"),
            ("4. none", "here"),
            ("Start with this plan?", "actually make it English only"),
            ("Changed: languages = en", "yes"),
            ("Train on this dataset?", "yes"),
            ("That is over your budget of 60 s: train", "yes"),
            ("Training runs in the background", "how is it going?"),
        ])
        child.expect([r"step \d+ of \d+", "loading the model"])
        while True:  # pause once it trains, not while it loads
            child.sendline("how is it going?")
            if child.expect([r"step \d+ of \d+", "loading the model"]) == 0:
                break
            time.sleep(2)
        child.sendline("pause")
        child.expect(r"paused after step (\d+)", timeout=300)
        paused_at = int(child.match.group(1))
        child.sendline("continue")
        child.expect_exact("continuing from the checkpoint")
        child.expect_exact("Serve it now on this machine?", timeout=1200)
        child.sendline("yes")
        answer = _served_answer(port, child)
    finally:
        child.terminate(force=True)
    shown = _screen(log)
    for said in ["Recommended training:", "estimated peak memory", "dataset ", "Q: ", "training will take about",
                 "note: your documents are also in zh, which the plan does not list",
                 "trained ", "merged into", "evaluation (held-out questions):", "tuned+rag", "gate "]:
        assert said in shown, f"{said!r} not on the screen:\n{shown[-4000:]}"
    assert "━" in shown  # the progress bars were drawn
    plan = load(ws / "plan.yaml")
    assert plan.languages == ("en",) and plan.docs == docs_dir and plan.base_model == "tiny"
    assert plan.deploy == "local" and plan.time_budget_hours == pytest.approx(1 / 60) and plan.method == "lora"
    # the pause kept the steps done: the run went on from its checkpoint, not from the start
    assert paused_at >= 1 and re.search(r"trained (\d+) steps", shown)
    assert (ws / "reports" / "plan" / "eval.md").is_file() and answer is not None


@pytest.mark.slow
def test_a_chinese_conversation_from_an_empty_workspace_to_a_served_model(tmp_path, docs_dir):
    ws = tmp_path / "ws"
    port, log = free_port(), tmp_path / "chat-zh.log"
    child = _spawn(ws, "zh", port, log)
    try:
        _talk(child, [
            ("这个助手要做什么", "你好"),
            ("你好！我来帮你搭建", "回答网店顾客关于退货和付款的问题"),
            ("中英文都有", "中英文都要"),
            ("（文件夹路径）", f"文档在 {docs_dir} 目录下"),
            ("文件的路径", "tiny 是什么意思？"),
            ("tiny 模型是", "1"),
            ("4. cpt（继续预训练）", "什么是 RAFT？"),
            ("RAFT（检索增强微调）", "第一个"),
            ("训练最多可以用多长时间", "半个小时"),
            ("（推荐）", "要"),
            ("暂不部署", "本机"),
            ("按这个计划开始吗", "好的"),
        ])
        child.expect_exact("用这个数据集训练吗？", timeout=900)  # the tiny base is built and the documents ingested first
        child.sendline("好的")
        child.expect_exact("开始训练吗？", timeout=600)
        child.sendline("开始吧")
        child.expect_exact("训练在后台进行")
        child.sendline("进度怎么样？")
        child.expect(["第 \\d+ 步", "正在加载模型"])
        child.expect_exact("现在在本机启动服务吗？", timeout=1800)
        child.sendline("好")
        answer = _served_answer(port, child)
    finally:
        child.terminate(force=True)
    shown = _screen(log)
    for said in ["推荐的训练设置：", "构建 tiny 基座模型", "已导入", "训练预计需要约", "训练完成", "已合并为", "评测（留出的问题）："]:
        assert said in shown, f"{said!r} not on the screen:\n{shown[-4000:]}"
    plan = load(ws / "plan.yaml")
    assert plan.languages == ("en", "zh") and plan.time_budget_hours == 0.5 and plan.stage == "sft"
    assert (ws / "reports" / "plan" / "eval.md").is_file() and answer is not None


@pytest.mark.slow
def test_a_chat_killed_mid_training_resumes_and_finds_the_training_still_running(tmp_path, workspace, tiny_base,
                                                                                docs_dir):
    import signal

    from agent.jobs import TrainingJob

    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    shutil.copytree(tiny_base, ws / "base" / "tiny")
    port, log = free_port(), tmp_path / "chat-killed.log"
    child = _spawn(ws, "en", port, log)
    _talk(child, [("What should the assistant do", "Answer customers"), ("or both?", "English"),
                  ("(a folder path)", str(docs_dir)), ("or a .gguf file", "tiny"), ("4. cpt", "1"),
                  ("How long may training take", "3 minutes"), ("before serving it?", "yes"), ("4. none", "local"),
                  ("Start with this plan?", "yes"), ("Train on this dataset?", "yes"),
                  ("That is over your budget of 3 min", "yes")])
    child.expect_exact("Training runs in the background")
    child.kill(signal.SIGKILL)
    child.wait()
    job = TrainingJob.find(ws / "runs" / "sft")
    assert job is not None and job.running()  # the training outlives the chat

    again = pexpect.spawn(sys.executable, ["-m", "agent.cli", "chat", "-w", str(ws), "--resume"], cwd=str(ROOT),
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "ONBOARD_PORT": str(port)}, encoding="utf-8",
                          timeout=300, dimensions=(50, 160))
    again.logfile_read = (tmp_path / "chat-resumed.log").open("w", encoding="utf-8")
    try:
        _talk(again, [("Train on this dataset?", "yes")])
        again.expect_exact("the training started earlier is still running; attached to it.")
        again.sendline("how is it going?")  # the job may still be loading: either is its state, read from the job
        again.expect([r"step \d+ of \d+", r"loading the model and data \(\d+ s so far\)"])
        again.expect_exact("Serve it now on this machine?", timeout=1200)
        again.sendline("no")
        again.expect_exact("serve it later with")
        again.expect(pexpect.EOF)
    finally:
        again.terminate(force=True)
    shown = _screen(tmp_path / "chat-resumed.log")
    assert "timing a few training steps" not in shown and "trained " in shown
    assert (ws / "runs" / "sft" / "adapter").is_dir() and (ws / "reports" / "plan" / "eval.md").is_file()

