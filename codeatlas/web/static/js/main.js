// Entry point: restores the session from the refresh cookie, draws the navigation, and maps
// each path to its view (history API; link clicks stay in the page).
import { ApiError, api, getToken, logout, onAuthChange, refresh, state } from "./api.js";
import { banner, errorText, h, link, page } from "./ui.js";
import { accountView, loginView, registerView, verifyView } from "./views/auth.js";
import { projectsView, projectView } from "./views/projects.js";
import { fileView } from "./views/file.js";
import { knowledgeView } from "./views/knowledge.js";
import { chatView } from "./views/chat.js";
import { adminView } from "./views/admin.js";
import { closeSocket, openSocket } from "./ws.js";

const routes = [
  [/^\/$/, projectsView, true],
  [/^\/login$/, loginView, false],
  [/^\/register$/, registerView, false],
  [/^\/verify-email$/, verifyView, false],
  [/^\/account$/, accountView, true],
  [/^\/projects\/(\d+)$/, projectView, true],
  [/^\/projects\/(\d+)\/files\/(\d+)$/, fileView, true],
  [/^\/knowledge$/, knowledgeView, true],
  [/^\/chat$/, chatView, true],
  [/^\/chat\/(\d+)$/, chatView, true],
  [/^\/admin$/, adminView, true],
];

let cleanup = null;

async function render() {
  const path = location.pathname;
  if (cleanup) { try { cleanup(); } catch { /* view already gone */ } cleanup = null; }
  for (const [re, view, needsAuth] of routes) {
    const m = path.match(re);
    if (!m) continue;
    if (needsAuth && !getToken()) {
      history.replaceState(null, "", "/login?next=" + encodeURIComponent(path + location.search + location.hash));
      return render();
    }
    drawNav();
    try {
      const result = await view(...m.slice(1).map(Number));
      if (typeof result === "function") cleanup = result;
    } catch (err) {
      // A page whose data cannot be loaded says why instead of staying blank: a project you
      // are no longer a member of answers 404, like one that never existed.
      if (!(err instanceof ApiError)) throw err;
      const gone = err.status === 404 || err.status === 403;
      page(gone ? "Not available" : "Something went wrong",
        banner("error", gone ? "This page does not exist or you have no access to it." : errorText(err), { id: "banner-page-error" }),
        link("/", "Back to projects"));
    }
    return;
  }
  drawNav();
  document.getElementById("main").replaceChildren(h("h1", { text: "Page not found" }), link("/", "Back to projects"));
}

export function go(url, { replace = false } = {}) {
  const target = new URL(url, location.href);
  const samePage = target.pathname === location.pathname && target.search === location.search;
  if (replace) history.replaceState(null, "", target.href); else history.pushState(null, "", target.href);
  if (samePage && target.hash) { window.dispatchEvent(new HashChangeEvent("hashchange")); return; }
  render().then(() => document.getElementById("main").focus({ preventScroll: Boolean(target.hash) }));
}

function drawNav() {
  const nav = document.getElementById("nav");
  const here = location.pathname;
  const item = (href, text) => link(href, text, here === href || (href !== "/" && here.startsWith(href)) ? { "aria-current": "page" } : {});
  if (!state.user) {
    nav.replaceChildren(h("span", { class: "spacer" }), item("/login", "Sign in"), item("/register", "Register"));
    return;
  }
  const items = [item("/", "Projects"), item("/knowledge", "Knowledge"), item("/chat", "Chat")];
  if (state.user.is_admin) items.push(item("/admin", "Admin"));
  nav.replaceChildren(...items, h("span", { class: "spacer" }), item("/account", state.user.email),
    h("button", { type: "button", class: "secondary", id: "logout", onclick: async () => { await logout(); go("/login"); } }, "Sign out"));
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
window.addEventListener("popstate", () => render());
window.addEventListener("app:navigate", (e) => go(e.detail));

onAuthChange(async (signedIn) => {
  if (!signedIn) { state.user = null; closeSocket(); drawNav(); return; }
  if (!state.user) {
    try { state.user = await api("GET", "/auth/me"); } catch { state.user = null; }
    openSocket();
    drawNav();
  }
});

(async () => {
  try { await refresh(); } catch { /* not signed in */ }
  if (getToken() && !state.user) state.user = await api("GET", "/auth/me");
  await render();
})();
