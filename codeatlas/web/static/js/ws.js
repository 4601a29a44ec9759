// The live-events WebSocket (/api/v1/ws): authenticates with the in-memory access token,
// answers pings, reconnects with back-off and resumes from the last event id. Views subscribe
// by event type; when the socket is unavailable they fall back to polling.
import { getToken, refresh } from "./api.js";
import { hasFeature } from "./ui.js";

let socket = null;
let wanted = false;
let delay = 1000;
let lastEventId = null;
let ready = false;
const handlers = new Map();

export function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(fn);
  return () => handlers.get(type).delete(fn);
}

export function isLive() { return ready; }

export function send(msg) {
  if (socket && ready) { socket.send(JSON.stringify(msg)); return true; }
  return false;
}

export function openSocket() {
  wanted = true;
  // The server says whether it has the socket (data-ws on <body>); without it views poll.
  if (!hasFeature("ws")) return;
  if (socket || !getToken() || !("WebSocket" in window)) return;
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/ws";
  const ws = new WebSocket(url);
  socket = ws;
  ws.addEventListener("open", () => {
    const auth = { type: "auth", token: getToken() };
    if (lastEventId) auth.last_event_id = lastEventId;
    ws.send(JSON.stringify(auth));
  });
  ws.addEventListener("message", (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.type === "ping") { ws.send(JSON.stringify({ type: "pong" })); return; }
    if (msg.type === "ready") { ready = true; delay = 1000; }
    if (msg.id) lastEventId = msg.id;
    (handlers.get(msg.type) || []).forEach((fn) => fn(msg.data || {}, msg));
  });
  ws.addEventListener("close", (e) => {
    socket = null;
    ready = false;
    if (!wanted) return;
    // 4401-style closes mean the token expired: refresh it before trying again
    const again = () => setTimeout(() => openSocket(), delay);
    delay = Math.min(delay * 2, 30000);
    if (e.code >= 4400 && e.code < 4500) refresh().then(again, () => {});
    else again();
  });
  ws.addEventListener("error", () => { /* the close handler retries */ });
}

export function closeSocket() {
  wanted = false;
  if (socket) socket.close();
  socket = null;
  ready = false;
}
