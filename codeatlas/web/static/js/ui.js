// Small DOM helpers: element builder, banners, page titles, announcements. Nothing here sets
// inline styles or handlers, so the strict CSP holds.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "html") el.innerHTML = v; // only sanitised HTML from the rendering API
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function link(href, text, attrs = {}) {
  return h("a", { href, "data-link": true, ...attrs }, text);
}

export function banner(kind, text, attrs = {}) {
  return h("div", { class: "banner " + kind, role: kind === "error" ? "alert" : "status", ...attrs }, text);
}

export function errorText(err) {
  if (!err) return "";
  if (err.code === "VALIDATION_ERROR" && Array.isArray(err.details)) {
    return err.details.map((d) => (d.loc ? d.loc.slice(-1)[0] + ": " : "") + d.msg).join("; ");
  }
  return err.message || String(err);
}

export function page(title, ...children) {
  document.title = title + " · CodeAtlas";
  const main = document.getElementById("main");
  main.replaceChildren(h("h1", { text: title }), ...children.filter((c) => c !== null && c !== undefined && c !== false));
  return main;
}

export function announce(text) {
  const live = document.getElementById("live");
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 50);
}

export function field(labelText, input) {
  return h("label", {}, labelText, input);
}

export function navigate(url) {
  window.dispatchEvent(new CustomEvent("app:navigate", { detail: url }));
}

export function fmtDate(s) {
  try { return new Date(s).toLocaleString(); } catch { return s; }
}

export function hasFeature(name) {
  return (document.body.dataset.features || "").split(" ").includes(name);
}

// Sanitised HTML from the rendering API; code blocks that may scroll sideways get keyboard
// focus (axe: scrollable regions must be reachable without a mouse).
export function setHtml(el, html) {
  el.innerHTML = html;
  el.querySelectorAll("pre").forEach((pre) => { pre.tabIndex = 0; });
}
