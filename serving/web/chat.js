// The chat page: POST /chat streamed (sources, handoff, feedback), and the "Set up a fine-tune" mode on the
// agent's interview (/v1/interview/...). Everything the server sends is shown as text, never as HTML.
"use strict";

const TEXT = {
  en: {
    modeChat: "Ask", modeSetup: "Set up a fine-tune", key: "API key", send: "Send", newChat: "New conversation",
    askHint: "Ask a question…", answerHint: "Your answer…", sources: "Sources", thanks: "Thanks for the feedback.",
    up: "Helpful", down: "Not helpful", correction: "What should the answer have been? (optional)",
    sendCorrection: "Send feedback", handoff: "A person will take over this conversation",
    chatOff: "This server keeps no conversations: serve it with a workspace (onboard serve --workspace DIR).",
    setupOff: "This server does not run the setup agent: start it with onboard serve --workspace DIR.",
    needKey: "This server needs an API key: enter it above (onboard keys create NAME makes one).",
    failed: "The request failed", you: "You", bot: "Assistant", agent: "Setup agent", stopped: "The run ended",
  },
  zh: {
    modeChat: "提问", modeSetup: "设置微调", key: "API 密钥", send: "发送", newChat: "新对话",
    askHint: "请输入问题…", answerHint: "请输入回答…", sources: "来源", thanks: "感谢您的反馈。",
    up: "有帮助", down: "没有帮助", correction: "正确的回答应该是什么？（可选）",
    sendCorrection: "提交反馈", handoff: "将由人工客服接手此对话",
    chatOff: "此服务器不保存对话：请用工作区启动（onboard serve --workspace DIR）。",
    setupOff: "此服务器没有运行设置助手：请用 onboard serve --workspace DIR 启动。",
    needKey: "此服务器需要 API 密钥：请在上方输入（onboard keys create NAME 可生成）。",
    failed: "请求失败", you: "你", bot: "助手", agent: "设置助手", stopped: "运行已结束",
  },
};

const $ = (id) => document.getElementById(id);
const cfg = document.body.dataset;
const state = {
  lang: localStorage.getItem("onboard.lang") || ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en"),
  session: sessionStorage.getItem("onboard.session"),
  thread: localStorage.getItem("onboard.thread"),
};
const t = (name) => TEXT[state.lang][name];

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  $("lang").textContent = state.lang === "zh" ? "English" : "中文";
}

function headers() {
  const h = { "content-type": "application/json" };
  const key = $("key").value.trim();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Server-sent events from a fetch response (EventSource cannot POST or send a key): yields {event, data, id}.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const ev = { event: "message", data: "", id: null };
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") ev.event = val;
        else if (field === "data") data.push(val);
        else if (field === "id") ev.id = val;
      }
      if (data.length) { ev.data = data.join("\n"); yield ev; }
    }
  }
}

async function failure(response) {
  if (response.status === 401) { showKeyBox(); return t("needKey"); }
  try {
    const body = await response.json();
    return `${t("failed")} (${response.status}): ${(body.error && body.error.message) || body.detail || ""}`;
  } catch { return `${t("failed")} (${response.status})`; }
}

function showKeyBox() { $("key-box").hidden = false; }

// ------------------------------------------------------------------ Ask: POST /chat

function bubble(list, who, cls) {
  const item = el("li", `msg ${cls}`);
  item.append(el("span", "who", who));
  const body = el("div", "text");
  item.append(body);
  list.append(item);
  item.scrollIntoView({ block: "end" });
  return { item, body };
}

// The answer's text with each [n] turned into a link to its source (the n-th of `sources`).
function renderAnswer(body, text, sources) {
  body.textContent = "";
  const parts = text.split(/(\[\d+\])/);
  for (const part of parts) {
    const m = /^\[(\d+)\]$/.exec(part);
    const n = m ? Number(m[1]) : 0;
    if (m && n >= 1 && n <= sources.length) {
      const a = el("button", "cite", part);
      a.type = "button";
      a.addEventListener("click", () => openSource(body.parentElement, n - 1));
      body.append(a);
    } else body.append(document.createTextNode(part));
  }
}

function openSource(item, i) {
  const rows = item.querySelectorAll(".source");
  if (rows[i]) { rows[i].open = true; rows[i].scrollIntoView({ block: "nearest" }); }
}

function renderSources(item, sources) {
  if (!sources.length) return;
  const box = el("div", "sources");
  box.append(el("span", "label", t("sources")));
  sources.forEach((s, i) => {
    const row = el("details", "source");
    const title = [s.source, s.heading_path].filter(Boolean).join(" › ");
    row.append(el("summary", "", `[${i + 1}] ${title}`));
    row.append(el("p", "snippet", s.snippet));
    box.append(row);
  });
  item.append(box);
}

function renderHandoff(item, handoff) {
  if (!handoff || !handoff.needed) return;
  const note = el("p", "handoff", t("handoff"));
  if (handoff.reason) note.title = handoff.reason;
  note.dataset.reason = handoff.reason || "";
  item.append(note);
}

function renderFeedback(item, responseId) {
  const bar = el("div", "feedback");
  const up = el("button", "thumb up", `✓ ${t("up")}`);  // text, not emoji: shown by any font
  const down = el("button", "thumb down", `✗ ${t("down")}`);
  up.type = down.type = "button";
  const done = (text) => { bar.textContent = ""; bar.append(el("span", "thanks", text)); };
  const send = async (body) => {
    const r = await fetch("/feedback", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    done(r.ok ? t("thanks") : await failure(r));
  };
  up.addEventListener("click", () => send({ response_id: responseId, rating: "up" }));
  down.addEventListener("click", () => {
    bar.textContent = "";
    const form = el("form", "correction");
    const box = el("textarea");
    box.placeholder = t("correction");
    box.rows = 2;
    const go = el("button", "", t("sendCorrection"));
    go.type = "submit";
    form.append(box, go);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const correction = box.value.trim();
      send(correction ? { response_id: responseId, rating: "down", correction } : { response_id: responseId, rating: "down" });
    });
    bar.append(form);
    box.focus();
  });
  bar.append(up, down);
  item.append(bar);
}

async function ask(question) {
  const list = $("messages");
  bubble(list, t("you"), "user").body.textContent = question;
  const { item, body } = bubble(list, t("bot"), "bot pending");
  const payload = { message: question, stream: true };
  if (state.session) payload.session_id = state.session;
  let response;
  try {
    response = await fetch("/chat", { method: "POST", headers: headers(), body: JSON.stringify(payload) });
  } catch (e) { body.textContent = `${t("failed")}: ${e}`; item.classList.add("error"); return; }
  if (response.status === 404 && state.session) {  // the conversation expired: start a new one
    state.session = null;
    sessionStorage.removeItem("onboard.session");
    item.remove();
    list.lastChild.remove();
    return ask(question);
  }
  if (!response.ok) { body.textContent = await failure(response); item.classList.add("error"); return; }
  let text = "";
  for await (const ev of events(response)) {
    const data = JSON.parse(ev.data);
    if (ev.event === "start") {
      state.session = data.session_id;
      sessionStorage.setItem("onboard.session", data.session_id);
      item.dataset.responseId = data.response_id;
    } else if (ev.event === "delta") {
      text += data.text;
      body.textContent = text;
    } else if (ev.event === "end") {
      item.classList.remove("pending");
      renderAnswer(body, data.reply, data.sources);
      renderSources(item, data.sources);
      renderHandoff(item, data.handoff);
      renderFeedback(item, data.response_id);
    } else if (ev.event === "error") {
      item.classList.add("error");
      body.textContent = `${t("failed")}: ${data.error.message}`;
    }
  }
  item.classList.remove("pending");
}

// ------------------------------------------------------------------ Set up a fine-tune: the interview

function threadPath(rest = "") { return `/v1/interview/threads/${state.thread}${rest}`; }

function agentSays(text) { bubble($("setup-messages"), t("agent"), "bot").body.textContent = text; }

async function openSetup() {
  if (!state.thread) {
    state.thread = `web-${crypto.getRandomValues(new Uint32Array(2)).join("")}`;
    localStorage.setItem("onboard.thread", state.thread);
  }
  if ($("setup-messages").childElementCount) return;
  const r = await fetch(`${threadPath()}?lang=${state.lang}`, { headers: headers() });
  if (!r.ok) { agentSays(await failure(r)); return; }
  const reply = await r.json();
  agentSays(reply.say);
  if (reply.run) follow(reply.run);
}

async function answer(text) {
  bubble($("setup-messages"), t("you"), "user").body.textContent = text;
  const r = await fetch(threadPath("/messages"), { method: "POST", headers: headers(), body: JSON.stringify({ message: text }) });
  if (!r.ok) { agentSays(await failure(r)); return; }
  for await (const ev of events(r)) {
    if (ev.event !== "reply") continue;
    const reply = JSON.parse(ev.data);
    agentSays(reply.say);
    if (reply.run) follow(reply.run);
  }
}

async function follow(path) {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) { agentSays(await failure(r)); return; }
  $("progress").hidden = false;
  for await (const ev of events(r)) {
    const data = JSON.parse(ev.data);
    if (ev.event === "say") agentSays(data.say);
    else if (ev.event === "progress") {
      $("progress-bar").max = data.total || 1;
      $("progress-bar").value = data.done || 0;
      $("progress-text").textContent = `${data.progress} ${data.done}/${data.total}`;
    } else if (ev.event === "end") {
      agentSays(`${t("stopped")}: ${JSON.stringify(data.end)}`);
      $("progress").hidden = true;
    }
  }
}

// ------------------------------------------------------------------ wiring

function setMode(mode) {
  $("chat").hidden = mode !== "chat";
  $("setup").hidden = mode !== "setup";
  $("mode-chat").classList.toggle("active", mode === "chat");
  $("mode-setup").classList.toggle("active", mode === "setup");
  if (mode === "setup" && cfg.setup === "true") openSetup();
}

function submitOnEnter(area, form) {
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
}

function busy(form, on) { for (const b of form.querySelectorAll("button, textarea")) b.disabled = on; }

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("key").value = localStorage.getItem("onboard.key") || "";
  $("key").addEventListener("change", () => localStorage.setItem("onboard.key", $("key").value.trim()));
  if (cfg.keys === "true") showKeyBox();
  if (cfg.chat !== "true") { $("chat-off").hidden = false; $("ask").hidden = true; }
  if (cfg.setup !== "true") { $("setup-off").hidden = false; $("answer").hidden = true; }
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("onboard.lang", state.lang);
    applyLanguage();
  });
  $("mode-chat").addEventListener("click", () => setMode("chat"));
  $("mode-setup").addEventListener("click", () => setMode("setup"));
  $("new-chat").addEventListener("click", () => {
    state.session = null;
    sessionStorage.removeItem("onboard.session");
    $("messages").textContent = "";
  });
  for (const [form, area, handler] of [[$("ask"), $("question"), ask], [$("answer"), $("setup-input"), answer]]) {
    submitOnEnter(area, form);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = area.value.trim();
      if (!text) return;
      area.value = "";
      busy(form, true);
      try { await handler(text); } finally { busy(form, false); area.focus(); }
    });
  }
});
