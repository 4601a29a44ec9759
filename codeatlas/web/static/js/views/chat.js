// Chat: the conversations list, messages with answers streamed over the WebSocket (or polled
// without it) and rendered as Markdown by the rendering API, citations that open the cited
// lines, stop and regenerate, and a clear notice when no LLM is configured.
import { api } from "../api.js";
import { banner, errorText, h, hasFeature, link, navigate, page, setHtml } from "../ui.js";
import { isLive, on, send } from "../ws.js";
import { renderMarkdown } from "./knowledge.js";

const ACTIVE = new Set(["pending", "streaming"]);

export async function chatView(chatId) {
  if (!hasFeature("chat")) {
    page("Chat", banner("warn", "Chat is not available on this server yet.", { id: "banner-no-chat" }));
    return;
  }
  const stops = [];
  const list = h("ul", { class: "chatlist", id: "chat-list", "aria-label": "Conversations" });
  const msg = h("div", { id: "chat-msg" });
  const pane = h("section", { "aria-label": "Conversation", id: "chat-pane" });
  page("Chat", msg, h("div", { class: "chat" },
    h("nav", { "aria-label": "Conversations" },
      h("button", { type: "button", id: "new-chat", onclick: newChat }, "New conversation"), list),
    pane));

  async function newChat() {
    try { const c = await api("POST", "/chats", { body: {} }); navigate(`/chat/${c.id}`); }
    catch (err) { msg.replaceChildren(banner("error", errorText(err))); }
  }
  const chats = await api("GET", "/chats?limit=50");
  list.replaceChildren(...chats.items.map((c) => h("li", {},
    link(`/chat/${c.id}`, c.title || `Conversation ${c.id}`, c.id === chatId ? { "aria-current": "page" } : {}))));
  if (!chatId) {
    pane.append(h("p", { class: "muted" }, chats.items.length ? "Pick a conversation or start a new one." : "No conversations yet."));
    return;
  }
  return conversation(chatId, pane, msg, stops);
}

// What an administrator sets, in the server's own words when it sent them (the 503's message
// names LLM_BASE_URL, LLM_API_KEY, LLM_MODEL and the local model's LLM_PROVIDER=local).
const NO_LLM_HELP = "An administrator sets LLM_BASE_URL (with LLM_API_KEY and LLM_MODEL) to an "
  + "OpenAI-compatible API, or installs the local model and sets LLM_PROVIDER=local.";

function noLlmBanner(serverMessage, attrs = {}) {
  const help = serverMessage && /LLM_/.test(serverMessage) ? serverMessage.replace(/\.?$/, ".") : NO_LLM_HELP;
  return h("div", { class: "banner warn", role: "alert", ...attrs },
    h("strong", {}, "Chat cannot answer: no language model is configured on this server."),
    h("p", { class: "banner-detail" }, help));
}

function citationLink(c) {
  if (c.document_id && c.project_id) {
    const range = c.start_line ? `#L${c.start_line}-L${c.end_line || c.start_line}` : "";
    return link(`/projects/${c.project_id}/files/${c.document_id}${range}`, `${c.path || c.title}${c.start_line ? `:${c.start_line}-${c.end_line}` : ""}`, { class: "citation-link" });
  }
  return h("span", { text: c.title || `Knowledge entry ${c.kb_entry_id}` });
}

async function conversation(chatId, pane, msg, stops) {
  const messages = h("ol", { class: "messages", id: "messages", "aria-live": "polite" });
  const input = h("textarea", { id: "chat-input", required: true, rows: "3" });
  const sendBtn = h("button", { type: "submit", id: "chat-send" }, "Send");
  const stopBtn = h("button", { type: "button", class: "secondary", id: "chat-stop", hidden: true }, "Stop");
  const regenBtn = h("button", { type: "button", class: "secondary", id: "chat-regenerate" }, "Regenerate");
  const views = new Map(); // message id -> {el, body, data, text, timer}
  let current = null; // the assistant message being written
  let poller = null;

  function setBusy(busy) {
    stopBtn.hidden = !busy;
    sendBtn.disabled = busy;
    regenBtn.disabled = busy;
  }

  async function paintMarkdown(v) {
    const text = v.text;
    try {
      const html = await renderMarkdown(text || " ");
      if (v.text === text) setHtml(v.body, html);
    } catch { v.body.textContent = text; }
  }

  function paintCitations(v, citations) {
    v.cites.replaceChildren(...(citations || []).map((c) => h("li", {}, `[${c.n}] `, citationLink(c))));
  }

  function show(m) {
    let v = views.get(m.id);
    if (!v) {
      const body = h("div", { class: "md" });
      const cites = h("ol", { class: "citations", "aria-label": "Sources" });
      const state = h("span", { class: "status-pill msg-status" });
      const el = h("li", { class: "msg " + m.role, dataset: { messageId: String(m.id) } },
        h("div", { class: "who" }, m.role === "user" ? "You" : "Assistant", " ", state), body, cites);
      v = { el, body, cites, state, text: "", data: m };
      views.set(m.id, v);
      messages.append(el);
    }
    v.data = m;
    v.el.dataset.status = m.status || "complete";
    v.state.textContent = m.role === "assistant" && m.status !== "complete" ? m.status : "";
    if (m.content !== undefined && m.content !== null && m.content !== v.text) { v.text = m.content; paintMarkdown(v); }
    if (m.status === "error" && !v.body.querySelector(".banner")) {
      v.body.append(m.error_code === "LLM_NOT_CONFIGURED" ? noLlmBanner(null)
        : m.error_code === "INTERRUPTED" ? banner("error", "The answer was interrupted (the server stopped while writing it); Regenerate to try again.")
        : banner("error", `The answer failed (${m.error_code || "error"}).`));
    }
    paintCitations(v, m.citations);
    return v;
  }

  async function load() {
    const data = await api("GET", `/chats/${chatId}/messages?limit=100`);
    const items = [...data.items].sort((a, b) => a.id - b.id);
    items.forEach(show);
    const active = items.find((m) => m.role === "assistant" && ACTIVE.has(m.status));
    current = active ? active.id : null;
    setBusy(Boolean(active));
    if (active && !isLive()) poll();
  }

  function poll() {
    clearTimeout(poller);
    poller = setTimeout(async () => { await load().catch(() => {}); }, 1000);
  }

  function noLlm(err) {
    if (err.code !== "LLM_NOT_CONFIGURED") return false;
    msg.replaceChildren(noLlmBanner(err.message, { id: "banner-no-llm", tabindex: "-1" }));
    msg.querySelector("#banner-no-llm").focus();
    return true;
  }

  async function onsubmit(e) {
    e.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    setBusy(true);
    try {
      const r = await api("POST", `/chats/${chatId}/messages`, { body: { content } });
      input.value = "";
      current = r.assistant_message_id;
      show({ id: r.user_message_id, role: "user", content, status: "complete" });
      show({ id: r.assistant_message_id, role: "assistant", content: "", status: "pending" });
      if (!isLive()) poll();
    } catch (err) {
      setBusy(false);
      if (!noLlm(err)) msg.replaceChildren(banner("error", errorText(err)));
    }
  }

  stopBtn.addEventListener("click", async () => {
    if (!current) return;
    if (!send({ type: "chat.stop", message_id: current })) {
      try { await api("POST", `/chats/${chatId}/messages/${current}/stop`); } catch (err) { msg.replaceChildren(banner("error", errorText(err))); }
    }
  });
  regenBtn.addEventListener("click", async () => {
    try {
      const r = await api("POST", `/chats/${chatId}/regenerate`);
      setBusy(true);
      current = r.assistant_message_id;
      show({ id: r.assistant_message_id, role: "assistant", content: "", status: "pending" });
      if (!isLive()) poll();
    } catch (err) { if (!noLlm(err)) msg.replaceChildren(banner("error", errorText(err))); }
  });

  // Tokens arrive in order per message; the Markdown is re-rendered at most every 250 ms.
  stops.push(on("chat.token", (d) => {
    if (d.chat_id !== chatId) return;
    const v = views.get(d.message_id) || show({ id: d.message_id, role: "assistant", content: "", status: "streaming" });
    v.text += d.text;
    v.el.dataset.status = "streaming";
    v.state.textContent = "streaming";
    setBusy(true);
    current = d.message_id;
    if (!v.timer) v.timer = setTimeout(() => { v.timer = null; paintMarkdown(v); }, 250);
  }));
  stops.push(on("chat.done", (d) => {
    if (d.chat_id !== chatId) return;
    setBusy(false);
    load().catch(() => {});
  }));
  stops.push(on("chat.error", (d) => {
    if (d.chat_id !== chatId) return;
    setBusy(false);
    if (!noLlm({ code: d.error_code })) msg.replaceChildren(banner("error", d.message || d.error_code));
    load().catch(() => {});
  }));
  stops.push(() => clearTimeout(poller));

  pane.replaceChildren(messages,
    h("form", { class: "stack", onsubmit, "aria-label": "Ask" },
      h("label", { for: "chat-input" }, "Your question"), input,
      h("div", { class: "row" }, sendBtn, stopBtn, regenBtn)));
  await load();
  input.focus();
  return () => stops.forEach((fn) => fn());
}
