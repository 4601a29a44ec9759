// Administration: background jobs (filter, retry, cancel) and the users list.
import { api } from "../api.js";
import { banner, errorText, fmtDate, h, page } from "../ui.js";

const STATUSES = ["", "queued", "running", "retrying", "succeeded", "failed", "dead", "cancelled"];

export async function adminView() {
  const panel = h("div", { id: "admin-panel", role: "tabpanel" });
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Administration" });
  const tab = (id, text, show) => h("button", { type: "button", role: "tab", id, "aria-controls": "admin-panel",
    onclick: () => { tabs.querySelectorAll("[role=tab]").forEach((t) => t.setAttribute("aria-selected", String(t.id === id))); panel.setAttribute("aria-labelledby", id); show(); } }, text);
  tabs.append(tab("tab-jobs", "Jobs", () => jobs(panel)), tab("tab-users", "Users", () => users(panel)));
  page("Administration", tabs, panel);
  tabs.firstChild.click();
}

async function jobs(panel) {
  const msg = h("div", { id: "jobs-msg" });
  const status = h("select", { id: "job-status" }, ...STATUSES.map((s) => h("option", { value: s }, s || "any")));
  const body = h("tbody");
  const counts = h("p", { class: "muted", id: "job-counts" });
  async function load() {
    const q = status.value ? `?status=${status.value}` : "";
    const data = await api("GET", `/admin/jobs${q}`);
    counts.textContent = Object.entries(data.counts || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
    body.replaceChildren(...data.items.map((j) => {
      const act = (verb) => h("button", { type: "button", class: verb === "cancel" ? "secondary" : "", "aria-label": `${verb} job ${j.id}`,
        dataset: { action: verb, job: String(j.id) }, onclick: async () => {
          try { await api("POST", `/admin/jobs/${j.id}/${verb}`); msg.replaceChildren(banner("ok", `Job ${j.id} ${verb === "retry" ? "re-queued" : "cancelled"}.`)); load(); }
          catch (err) { msg.replaceChildren(banner("error", errorText(err))); }
        } }, verb === "retry" ? "Retry" : "Cancel");
      return h("tr", { dataset: { jobId: String(j.id), status: j.status } },
        h("td", { text: String(j.id) }), h("td", { text: j.actor }),
        h("td", {}, h("span", { class: "status-pill job-status", text: j.status })),
        h("td", { text: String(j.attempts) }), h("td", { text: (j.project_id || "–") + " / " + (j.document_id || "–") }),
        h("td", { text: fmtDate(j.updated_at) }), h("td", { text: (j.last_error || "").slice(0, 80) }),
        h("td", {}, ["failed", "dead"].includes(j.status) ? act("retry") : null,
          ["queued", "retrying"].includes(j.status) ? act("cancel") : null));
    }));
    if (!data.items.length) body.append(h("tr", {}, h("td", { colspan: "8", text: "No jobs." })));
  }
  status.addEventListener("change", load);
  panel.replaceChildren(msg, h("div", { class: "row" }, h("label", { for: "job-status" }, "Status"), status,
    h("button", { type: "button", class: "secondary", id: "jobs-reload", onclick: load }, "Reload")), counts,
    h("div", { class: "scroll-x", tabindex: "0", role: "region", "aria-label": "Jobs" }, h("table", { class: "data", id: "jobs-table" },
      h("thead", {}, h("tr", {}, ...["Id", "Actor", "Status", "Attempts", "Project / file", "Updated", "Last error"].map((t) => h("th", { text: t })),
        h("th", {}, h("span", { class: "visually-hidden" }, "Actions")))), body)));
  await load();
}

async function users(panel) {
  const body = h("tbody");
  panel.replaceChildren(h("div", { class: "scroll-x", tabindex: "0", role: "region", "aria-label": "Users" }, h("table", { class: "data", id: "users-table" },
    h("thead", {}, h("tr", {}, ...["Id", "E-mail", "Name", "Active", "Admin", "Created"].map((t) => h("th", { text: t })))), body)));
  try {
    const data = await api("GET", "/admin/users?limit=200");
    body.replaceChildren(...data.items.map((u) => h("tr", {}, h("td", { text: String(u.id) }), h("td", { text: u.email }),
      h("td", { text: u.full_name }), h("td", { text: u.is_active ? "yes" : "no" }), h("td", { text: u.is_admin ? "yes" : "no" }),
      h("td", { text: fmtDate(u.created_at) }))));
  } catch (err) { panel.prepend(banner("error", errorText(err))); }
}
