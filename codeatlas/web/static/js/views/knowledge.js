// The knowledge base: entries listed, written and edited with a Markdown preview (rendered
// and sanitised by the rendering API), deleted, and searched by meaning.
import { api } from "../api.js";
import { banner, errorText, field, fmtDate, h, page, setHtml } from "../ui.js";

export async function renderMarkdown(markdown) {
  const out = await api("POST", "/rendering/markdown", { body: { markdown } });
  return out.html;
}

export async function knowledgeView() {
  const list = h("ul", { class: "results", id: "kb-list", "aria-label": "Entries" });
  const msg = h("div");
  const editor = h("section", { class: "panel", "aria-labelledby": "kb-edit-h" });
  const projects = await api("GET", "/projects");

  async function load() {
    const data = await api("GET", "/knowledge/entries?limit=100");
    list.replaceChildren(...data.items.map((e) => h("li", {},
      h("strong", { text: e.title }), " ",
      h("span", { class: "muted", text: (e.tags || []).join(", ") }),
      h("div", { class: "row" },
        h("button", { type: "button", class: "secondary", "aria-label": `Edit ${e.title}`, onclick: () => edit(e) }, "Edit"),
        h("button", { type: "button", class: "danger", "aria-label": `Delete ${e.title}`, onclick: async () => {
          if (!confirm(`Delete “${e.title}”?`)) return;
          try { await api("DELETE", `/knowledge/entries/${e.id}`); msg.replaceChildren(banner("ok", "Entry deleted.")); load(); }
          catch (err) { msg.replaceChildren(banner("error", errorText(err))); }
        } }, "Delete"),
        h("span", { class: "muted", text: "updated " + fmtDate(e.updated_at) })))));
    if (!data.items.length) list.append(h("li", { class: "muted" }, "No entries yet."));
  }

  function edit(entry) {
    const title = h("input", { type: "text", id: "kb-title", required: true, value: entry ? entry.title : "" });
    const content = h("textarea", { id: "kb-content", required: true });
    content.value = entry ? entry.content : "";
    const tags = h("input", { type: "text", id: "kb-tags", value: entry ? entry.tags.join(", ") : "" });
    const project = h("select", { id: "kb-project", disabled: Boolean(entry) },
      h("option", { value: "" }, "Everyone (global)"),
      ...projects.map((p) => h("option", { value: String(p.id), selected: entry && entry.project_id === p.id }, p.name)));
    const preview = h("div", { class: "md panel", id: "kb-preview", "aria-live": "polite" });
    async function showPreview() {
      try { setHtml(preview, await renderMarkdown(content.value || " ")); }
      catch (err) { preview.replaceChildren(banner("error", errorText(err))); }
    }
    async function onsubmit(e) {
      e.preventDefault();
      const body = { title: title.value, content: content.value, tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean) };
      try {
        if (entry) await api("PATCH", `/knowledge/entries/${entry.id}`, { body });
        else await api("POST", "/knowledge/entries", { body: { ...body, project_id: project.value ? Number(project.value) : null } });
        msg.replaceChildren(banner("ok", entry ? "Entry saved." : "Entry created.", { id: "kb-saved" }));
        edit(null);
        load();
      } catch (err) { msg.replaceChildren(banner("error", errorText(err))); }
    }
    editor.replaceChildren(h("h2", { id: "kb-edit-h", text: entry ? `Edit “${entry.title}”` : "New entry" }),
      h("form", { class: "stack", onsubmit },
        field("Title", title), field("Content (Markdown)", content), field("Tags (comma-separated)", tags),
        field("Visible to", project),
        h("div", { class: "row" },
          h("button", { type: "button", class: "secondary", id: "kb-preview-button", onclick: showPreview }, "Preview"),
          h("button", { type: "submit", id: "kb-save" }, entry ? "Save" : "Create"),
          entry ? h("button", { type: "button", class: "secondary", onclick: () => edit(null) }, "Cancel") : null)),
      h("h3", { text: "Preview" }), preview);
    if (entry) title.focus();
  }

  const q = h("input", { type: "search", id: "kb-search", required: true });
  const results = h("ul", { class: "results", id: "kb-results" });
  async function search(e) {
    e.preventDefault();
    try {
      const data = await api("POST", "/knowledge/search", { body: { query: q.value, kinds: ["entry"] } });
      results.replaceChildren(...data.results.map((r) => h("li", {}, h("strong", { text: r.title || r.id }),
        h("pre", { class: "snippet", tabindex: "0", text: r.snippet }))));
      if (!data.results.length) results.append(h("li", { class: "muted" }, "Nothing found."));
    } catch (err) { results.replaceChildren(h("li", {}, banner("error", errorText(err)))); }
  }

  page("Knowledge base", msg,
    h("form", { class: "row", role: "search", onsubmit: search },
      h("label", { for: "kb-search", class: "visually-hidden" }, "Search the knowledge base"), q,
      h("button", { type: "submit" }, "Search")),
    results, h("h2", { text: "Entries" }), list, editor);
  edit(null);
  await load();
}
