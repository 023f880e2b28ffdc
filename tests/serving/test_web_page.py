"""The web chat page in a real headless Chromium (Debian's `chromium`, driven by Playwright) against a real
server with keys on: ask, watch the answer stream in with its sources, give feedback and find it stored, ask
for a person in Chinese, and open the "Set up a fine-tune" mode. A screenshot of each mode is written to
test-output/web/ (ONBOARD_TEST_OUTPUT)."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from serving.keys import KeyStore
from tests.serving.servers import ROOT, serve_in_process

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(merged_model, workspace, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    store = KeyStore(tmp / "keys.sqlite")
    _, secret = store.create("web page")
    env = {"ONBOARD_THREADS": "2", "ONBOARD_KEYS_FILE": str(store.path), "ONBOARD_MAX_NEW_TOKENS": "24",
           "ONBOARD_CONVERSATIONS_FILE": str(tmp / "chat.sqlite"), "ONBOARD_FEEDBACK_FILE": str(tmp / "feedback.jsonl")}
    argv = [sys.executable, "-m", "agent.cli", "serve", "--workspace", str(workspace), "--model", str(merged_model)]
    with serve_in_process(env, tmp / "server.log", argv) as base:
        yield base, secret, tmp


@pytest.fixture()
def browser_page():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed: `make browser` (apt-get install chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(locale="en-US", viewport={"width": 1000, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
        assert errors == [], f"the page's script failed: {errors}"


def _shots() -> Path:
    out = Path(os.environ.get("ONBOARD_TEST_OUTPUT", ROOT / "test-output")) / "web"
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_ask_see_the_streamed_answer_and_its_sources_and_give_feedback(site, browser_page):
    from playwright.sync_api import expect

    base, secret, tmp = site
    page = browser_page
    page.goto(base)
    expect(page.locator("#key-box")).to_be_visible()  # the server has keys: the page asks for one
    page.fill("#question", "Do you ship to Canada?")
    page.press("#question", "Enter")
    expect(page.locator("#messages .msg.bot.error")).to_contain_text("needs an API key")

    page.fill("#key", secret)
    page.dispatch_event("#key", "change")
    page.evaluate("""() => { window.pieces = 0;
        new MutationObserver(() => { window.pieces += 1; })
          .observe(document.getElementById('messages'), {subtree: true, characterData: true, childList: true}); }""")
    page.fill("#question", "Do you ship to Canada?")
    page.click("#send")
    answer = page.locator("#messages .msg.bot").last
    expect(answer.locator(".feedback")).to_be_visible(timeout=120_000)  # the answer has ended
    assert answer.locator(".text").inner_text().strip()
    assert page.evaluate("window.pieces") >= 3  # the bubble, the text as it came, the sources and thumbs
    sources = answer.locator(".source")
    assert sources.count() >= 1 and "shipping.md" in " ".join(sources.all_inner_texts())
    first = sources.first
    first.locator("summary").click()
    expect(first.locator(".snippet")).to_be_visible()
    assert first.locator(".snippet").inner_text().strip()
    page.screenshot(path=str(_shots() / "chat.png"), full_page=True)

    answer.locator(".thumb.up").click()
    expect(answer.locator(".thanks")).to_have_text("Thanks for the feedback.")
    record = json.loads((tmp / "feedback.jsonl").read_text().splitlines()[-1])
    assert record["rating"] == "up" and record["response"] == answer.locator(".text").inner_text()
    assert record["messages"][-1]["content"] == "Do you ship to Canada?"

    page.click("#lang")  # 中文: the page's words change, and a Chinese request for a person is handed off
    expect(page.locator("#send")).to_have_text("发送")
    page.fill("#question", "我要转人工")
    page.click("#send")
    handed = page.locator("#messages .msg.bot").last
    expect(handed.locator(".handoff")).to_have_text("将由人工客服接手此对话", timeout=120_000)
    assert "人工" in handed.locator(".handoff").get_attribute("data-reason")
    handed.locator(".thumb.down").click()
    handed.locator(".correction textarea").fill("您好，我马上为您转接人工客服。")
    handed.locator(".correction button").click()
    expect(handed.locator(".thanks")).to_have_text("感谢您的反馈。")
    record = json.loads((tmp / "feedback.jsonl").read_text().splitlines()[-1])
    assert record["rating"] == "down" and record["correction"] == "您好，我马上为您转接人工客服。"
    page.screenshot(path=str(_shots() / "chat-zh.png"), full_page=True)


def test_the_set_up_a_fine_tune_mode_talks_to_the_agent(site, browser_page):
    from playwright.sync_api import expect

    base, secret, _ = site
    page = browser_page
    page.goto(base)
    page.fill("#key", secret)
    page.dispatch_event("#key", "change")
    page.click("#mode-setup")
    agent = page.locator("#setup-messages .msg.bot")
    expect(agent.first).to_be_visible(timeout=30_000)
    asked = agent.first.inner_text()
    page.fill("#setup-input", "A support bot that answers questions about our shop's shipping and returns.")
    page.press("#setup-input", "Enter")
    expect(agent).to_have_count(2, timeout=30_000)
    assert agent.nth(1).inner_text() != asked  # the next question, not the first one again
    page.screenshot(path=str(_shots() / "setup.png"), full_page=True)
