// Projects: the list and creation, one project's page (members and roles, uploads with a
// progress bar each, live indexing progress, the file tree, filename search as you type and
// hybrid search with snippets that open the matching lines).
import { api, state, upload } from "../api.js";
import { banner, errorText, field, fmtDate, h, hasFeature, link, navigate, page } from "../ui.js";
import { isLive, on } from "../ws.js";

const ARCHIVE = /\.(zip|tar\.gz|tgz)$/i;

export async function projectsView() {
  const list = h("ul", { class: "cards", id: "project-list", "aria-label": "Your projects" });
  const msg = h("div");
  const name = h("input", { type: "text", id: "project-name", required: true, maxlength: "200" });
  const desc = h("input", { type: "text", id: "project-description", maxlength: "10000" });
  async function load() {
    const projects = await api("GET", "/projects");
    list.replaceChildren(...projects.map((p) => h("li", {},
      link(`/projects/${p.id}`, p.name), " ", h("span", { class: "status-pill", text: p.role }),
      p.description ? h("p", { class: "muted", text: p.description }) : null)));
    if (!projects.length) list.append(h("li", { class: "muted" }, "No projects yet: create one below."));
  }
  async function onsubmit(e) {
    e.preventDefault();
    try {
      const p = await api("POST", "/projects", { body: { name: name.value, description: desc.value } });
      navigate(`/projects/${p.id}`);
    } catch (err) {
      msg.replaceChildren(banner("error", errorText(err)));
    }
  }
  page("Projects", list, h("h2", { text: "New project" }), msg,
    h("form", { class: "stack", onsubmit, "aria-label": "New project" },
      field("Name", name), field("Description (optional)", desc),
      h("button", { type: "submit", id: "create-project" }, "Create project")));
  await load();
}

export async function projectView(projectId) {
  const project = await api("GET", `/projects/${projectId}`);
  const canEdit = project.role === "owner" || project.role === "editor";
  const stops = [];
  const main = page(project.name);
  if (project.description) main.append(h("p", { class: "muted", text: project.description }));

  const tree = h("div", { class: "tree", id: "file-tree" });
  const indexing = indexingPanel(projectId, () => loadTree(projectId, tree), stops);
  main.append(
    h("div", { class: "grid2" },
      h("section", { "aria-labelledby": "files-h" }, h("h2", { id: "files-h", text: "Files" }), tree),
      h("div", {},
        filenameSearch(projectId),
        hybridSearch(projectId),
        canEdit ? uploadPanel(projectId, indexing.refresh) : null,
        indexing.el,
        membersPanel(project))));
  await loadTree(projectId, tree);
  indexing.refresh();
  return () => stops.forEach((fn) => fn());
}

async function allFiles(projectId) {
  const files = [];
  let cursor = null;
  do {
    const q = new URLSearchParams({ limit: "200" });
    if (cursor) q.set("cursor", cursor);
    const pageData = await api("GET", `/projects/${projectId}/files?${q}`);
    files.push(...pageData.items);
    cursor = pageData.next_cursor;
  } while (cursor && files.length < 5000);
  return files;
}

async function loadTree(projectId, container) {
  const files = await allFiles(projectId);
  if (!files.length) { container.replaceChildren(h("p", { class: "muted" }, "No files yet.")); return files; }
  const root = { dirs: new Map(), files: [] };
  for (const f of files) {
    const parts = f.path.split("/");
    let node = root;
    for (const dir of parts.slice(0, -1)) {
      if (!node.dirs.has(dir)) node.dirs.set(dir, { dirs: new Map(), files: [] });
      node = node.dirs.get(dir);
    }
    node.files.push(f);
  }
  const draw = (node, depth) => h("ul", {},
    ...[...node.dirs.entries()].sort().map(([name, child]) =>
      h("li", {}, h("details", { open: depth < 1 }, h("summary", { text: name + "/" }), draw(child, depth + 1)))),
    ...node.files.map((f) => h("li", {}, link(`/projects/${projectId}/files/${f.id}`, f.name,
      { title: f.path, "data-path": f.path }), f.status === "failed" ? h("span", { class: "status-pill" }, " failed") : null)));
  container.replaceChildren(draw(root, 0));
  return files;
}

function filenameSearch(projectId) {
  const listId = "filename-results";
  const input = h("input", {
    type: "search", id: "filename-search", role: "combobox", "aria-autocomplete": "list",
    "aria-expanded": "false", "aria-controls": listId, autocomplete: "off",
  });
  const listbox = h("ul", { role: "listbox", id: listId, "aria-label": "Matching files" });
  const status = h("p", { class: "muted", id: "filename-status", "aria-live": "polite" });
  let results = [];
  let active = -1;
  let timer = null;
  let seq = 0;
  const open = (yes) => input.setAttribute("aria-expanded", yes ? "true" : "false");
  function paint() {
    listbox.replaceChildren(...results.map((r, i) => h("li", {
      role: "option", id: `fn-opt-${i}`, "aria-selected": i === active ? "true" : "false",
      onmousedown: (e) => { e.preventDefault(); choose(i); },
    }, r.path)));
    if (active >= 0) { input.setAttribute("aria-activedescendant", `fn-opt-${active}`); listbox.children[active]?.scrollIntoView({ block: "nearest" }); }
    else input.removeAttribute("aria-activedescendant");
    open(results.length > 0);
  }
  function choose(i) {
    const r = results[i];
    if (r) navigate(`/projects/${projectId}/files/${r.document_id}`);
  }
  async function search() {
    const q = input.value.trim();
    const mine = ++seq;
    if (!q) { results = []; active = -1; status.textContent = ""; paint(); return; }
    try {
      const data = await api("GET", `/search/files?${new URLSearchParams({ q, project_id: projectId, limit: "20" })}`);
      if (mine !== seq) return;
      results = data.results;
      active = results.length ? 0 : -1;
      status.textContent = results.length ? `${results.length} file${results.length > 1 ? "s" : ""}` : "No file matches";
      paint();
    } catch (err) {
      status.textContent = errorText(err);
    }
  }
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 150); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && results.length) { e.preventDefault(); active = (active + 1) % results.length; paint(); }
    else if (e.key === "ArrowUp" && results.length) { e.preventDefault(); active = (active - 1 + results.length) % results.length; paint(); }
    else if (e.key === "Enter" && active >= 0) { e.preventDefault(); choose(active); }
    else if (e.key === "Escape") { results = []; active = -1; paint(); }
  });
  input.addEventListener("blur", () => setTimeout(() => open(false), 100));
  return h("section", { class: "panel", "aria-labelledby": "fn-h" },
    h("h2", { id: "fn-h", text: "Find a file" }),
    h("div", { class: "combobox" }, h("label", { for: "filename-search" }, "File name"), input, listbox), status);
}

function hybridSearch(projectId) {
  const input = h("input", { type: "search", id: "code-search", required: true });
  const out = h("ul", { class: "results", id: "code-search-results", "aria-label": "Search results" });
  const status = h("p", { class: "muted", "aria-live": "polite", id: "code-search-status" });
  async function onsubmit(e) {
    e.preventDefault();
    status.textContent = "Searching…";
    out.replaceChildren();
    try {
      const data = await api("POST", "/search", { body: { query: input.value, project_id: projectId } });
      status.textContent = data.results.length ? `${data.results.length} results` : "Nothing found";
      out.replaceChildren(...data.results.map((r) => h("li", {},
        link(`/projects/${r.project_id}/files/${r.document_id}#L${r.start_line}-L${r.end_line}`,
          `${r.path}:${r.start_line}-${r.end_line}`, { class: "result-link" }),
        r.symbol ? h("span", { class: "muted" }, " " + r.symbol) : null,
        h("pre", { class: "snippet", tabindex: "0", "aria-label": `Snippet of ${r.path}`, text: r.snippet }))));
    } catch (err) {
      status.textContent = err.status === 503 ? "Search by meaning is unavailable right now: " + errorText(err) : errorText(err);
    }
  }
  return h("section", { class: "panel", "aria-labelledby": "hs-h" },
    h("h2", { id: "hs-h", text: "Search the code" }),
    h("form", { class: "row", onsubmit, role: "search" },
      h("label", { for: "code-search", class: "visually-hidden" }, "Search query"), input,
      h("button", { type: "submit", id: "code-search-submit" }, "Search")),
    status, out);
}

async function entryFiles(entry, prefix) {
  if (entry.isFile) {
    const file = await new Promise((res, rej) => entry.file(res, rej));
    return [[prefix + file.name, file]];
  }
  const reader = entry.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
    if (!batch.length) break;
    for (const child of batch) out.push(...(await entryFiles(child, prefix + entry.name + "/")));
  }
  return out;
}

function uploadPanel(projectId, afterUpload) {
  const uploads = h("div", { id: "uploads", "aria-live": "polite" });
  let n = 0;
  async function send(label, pairs) {
    if (!pairs.length) return;
    const id = ++n;
    const bar = h("progress", { max: "100", value: "0", id: `upload-progress-${id}`, "aria-label": `Upload of ${label}` });
    const text = h("span", { text: `${label}: 0%` });
    const row = h("div", { class: "upload", dataset: { upload: String(id) } }, text, bar);
    uploads.prepend(row);
    const form = new FormData();
    for (const [path, file] of pairs) form.append(ARCHIVE.test(path) ? "archives" : "files", file, path);
    try {
      const res = await upload(`/projects/${projectId}/files`, form, (loaded, total) => {
        const pct = Math.round((loaded / total) * 100);
        bar.value = pct;
        text.textContent = `${label}: ${pct}%`;
      });
      bar.value = 100;
      text.textContent = `${label}: done (${res.created} new, ${res.updated} updated, ${res.unchanged} unchanged)`;
      row.dataset.done = "true";
      afterUpload();
    } catch (err) {
      row.dataset.done = "error";
      text.textContent = `${label}: failed`;
      row.append(banner("error", errorText(err)));
    }
  }
  const files = h("input", { type: "file", id: "upload-files", multiple: true });
  const folder = h("input", { type: "file", id: "upload-folder", webkitdirectory: true, multiple: true });
  files.addEventListener("change", () => {
    const list = [...files.files];
    send(list.length === 1 ? list[0].name : `${list.length} files`, list.map((f) => [f.name, f]));
    files.value = "";
  });
  folder.addEventListener("change", () => {
    const list = [...folder.files];
    const top = list.length ? list[0].webkitRelativePath.split("/")[0] : "folder";
    send(`folder ${top}`, list.map((f) => [f.webkitRelativePath || f.name, f]));
    folder.value = "";
  });
  const zone = h("div", { class: "dropzone", id: "dropzone" }, "Or drop files and folders here");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    const pairs = [];
    if (entries.length) for (const entry of entries) pairs.push(...(await entryFiles(entry, "")));
    else for (const f of e.dataTransfer.files) pairs.push([f.name, f]);
    send(`${pairs.length} dropped file${pairs.length === 1 ? "" : "s"}`, pairs);
  });
  return h("section", { class: "panel", "aria-labelledby": "up-h" },
    h("h2", { id: "up-h", text: "Upload" }),
    h("div", { class: "row" }, field("Files or archives (.zip, .tar.gz)", files), field("A whole folder", folder)),
    zone, uploads);
}

function indexingPanel(projectId, reloadTree, stops) {
  const filesBar = h("progress", { max: "1", value: "0", id: "index-files-progress", "aria-label": "Files indexed" });
  const chunksBar = h("progress", { max: "1", value: "0", id: "index-chunks-progress", "aria-label": "Chunks embedded" });
  const summary = h("p", { id: "index-summary", "aria-live": "polite" });
  const errors = h("ul", { id: "index-errors" });
  const el = h("section", { class: "panel", "aria-labelledby": "ix-h" },
    h("h2", { id: "ix-h", text: "Indexing" }), summary, filesBar, h("p", { class: "muted", id: "index-chunks" }), chunksBar, errors);
  let timer = null;
  let stopped = false;
  let lastPending = "";

  async function status() {
    if (hasFeature("indexing")) return api("GET", `/projects/${projectId}/indexing`);
    // Servers without the indexing endpoint: count the files' states instead.
    const files = await allFiles(projectId);
    const count = (...states) => files.filter((f) => states.includes(f.status)).length;
    return {
      files: { total: files.length, parsed: count("parsed"), searchable: count("searchable", "indexed"),
        failed: count("failed"), pending: count("pending", "processing") },
      chunks: null, eta_seconds: null,
      errors: files.filter((f) => f.status === "failed").map((f) => ({ document_id: f.id, path: f.path, error: f.error })),
    };
  }

  async function refresh() {
    clearTimeout(timer);
    if (stopped) return;
    try {
      const s = await status();
      const f = s.files;
      // a file is done once searchable (or failed); parsed files still wait for their vectors
      const done = f.searchable + f.failed;
      filesBar.max = Math.max(1, f.total);
      filesBar.value = done;
      const complete = f.total > 0 && done >= f.total;
      summary.textContent = f.total === 0 ? "No files yet."
        : complete ? `Indexing complete: ${f.searchable} of ${f.total} files searchable${f.failed ? `, ${f.failed} failed` : ""}.`
          : `Indexing: ${f.searchable} of ${f.total} files searchable, ${f.parsed} parsed, ${f.pending} waiting`
            + `${s.eta_seconds ? `, about ${Math.ceil(s.eta_seconds)} s left` : ""}…`;
      el.dataset.complete = complete ? "true" : "false";
      const chunkText = el.querySelector("#index-chunks");
      if (s.chunks) {
        chunksBar.hidden = false;
        chunksBar.max = Math.max(1, s.chunks.total);
        chunksBar.value = s.chunks.embedded;
        chunkText.textContent = `${s.chunks.embedded} of ${s.chunks.total} chunks embedded`;
      } else { chunksBar.hidden = true; chunkText.textContent = ""; }
      errors.replaceChildren(...(s.errors || []).map((e) => h("li", {}, h("strong", { text: e.path }), ": ", e.error || "failed")));
      const key = `${f.total}/${f.pending}/${f.failed}`;
      if (key !== lastPending) { lastPending = key; reloadTree(); }
      if (!complete && f.total > 0) timer = setTimeout(refresh, isLive() ? 3000 : 1500);
    } catch (err) {
      summary.textContent = errorText(err);
      timer = setTimeout(refresh, 5000);
    }
  }
  const kick = (data) => { if (!data.project_id || Number(data.project_id) === projectId) refresh(); };
  stops.push(on("document.indexed", kick), on("document.failed", kick), on("job.progress", kick), () => { stopped = true; clearTimeout(timer); });
  return { el, refresh };
}

function membersPanel(project) {
  const isOwner = project.role === "owner";
  const body = h("tbody", { id: "members-body" });
  const msg = h("div", { id: "members-msg" });
  const roles = ["owner", "editor", "viewer"];
  const say = (kind, text) => msg.replaceChildren(banner(kind, text));
  let members = [];
  async function load() {
    try {
      members = await api("GET", `/projects/${project.id}/members`);
    } catch (err) { say("error", errorText(err)); return; }
    body.replaceChildren(...members.map((m) => {
      const other = isOwner && m.user_id !== state.user.id;
      const roleCell = other
        ? h("select", { "aria-label": `Role of ${m.email}`, class: "member-role", onchange: async (e) => {
          try {
            await api("PATCH", `/projects/${project.id}/members/${m.user_id}`, { body: { role: e.target.value } });
            say("ok", `${m.email} is now ${e.target.value}.`);
          } catch (err) { say("error", errorText(err)); }
          load();
        } }, ...roles.map((r) => h("option", { value: r, selected: r === m.role }, r)))
        : h("span", { class: "member-role", text: m.role });
      const remove = other
        ? h("button", { type: "button", class: "secondary member-remove", "aria-label": `Remove ${m.email}`, onclick: async () => {
          try { await api("DELETE", `/projects/${project.id}/members/${m.user_id}`); say("ok", `${m.email} removed.`); }
          catch (err) { say("error", errorText(err)); }
          load();
        } }, "Remove") : "";
      return h("tr", { dataset: { email: m.email, role: m.role } },
        h("td", { text: m.email }), h("td", { text: m.full_name }), h("td", {}, roleCell), h("td", {}, remove));
    }));
    if (!isOwner) return;
    // Owners also see the invited addresses that have no verified account yet.
    let invited = [];
    try {
      invited = await api("GET", `/projects/${project.id}/invitations`);
    } catch (err) { say("error", errorText(err)); return; }
    body.append(...invited.map((i) => h("tr", { "data-invitation": String(i.id) },
      h("td", { text: i.email }), h("td", { class: "muted", text: "invited" }), h("td", { text: i.role }),
      h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Cancel the invitation of ${i.email}`, onclick: async () => {
        try { await api("DELETE", `/projects/${project.id}/invitations/${i.id}`); say("ok", `The invitation of ${i.email} is cancelled.`); }
        catch (err) { say("error", errorText(err)); }
        load();
      } }, "Cancel")))));
  }
  const email = h("input", { type: "email", id: "member-email", required: true, autocomplete: "off" });
  const role = h("select", { id: "member-role" }, ...roles.map((r) => h("option", { value: r, selected: r === "viewer" }, r)));
  const submit = h("button", { type: "submit", id: "member-add" }, "Add member");
  async function onsubmit(e) {
    e.preventDefault();
    const address = email.value.trim();
    const asRole = role.value;
    submit.disabled = true;
    try {
      // The same answer whether or not the address has an account (no enumeration): the
      // member list, reloaded, shows who is in; owners also see pending invitations.
      const r = await api("POST", `/projects/${project.id}/members`, { body: { email: address, role: asRole } });
      e.target.reset();
      await load();
      msg.replaceChildren(banner("ok", `${r.email} is added as ${r.role}. Without an account yet, they join when they register.`, { id: "banner-member-added" }));
    } catch (err) { say("error", errorText(err)); }
    finally { submit.disabled = false; }
  }
  load();
  return h("section", { class: "panel", "aria-labelledby": "mem-h", id: "members" },
    h("h2", { id: "mem-h", text: "Members" }), msg,
    h("div", { class: "scroll-x", tabindex: "0", role: "region", "aria-label": "Members" }, h("table", { class: "data", id: "members-table" },
      h("thead", {}, h("tr", {}, h("th", { text: "E-mail" }), h("th", { text: "Name" }), h("th", { text: "Role" }), h("th", {}, h("span", { class: "visually-hidden" }, "Actions")))), body)),
    isOwner ? h("form", { class: "stack", onsubmit, "aria-label": "Add a member", id: "member-form" },
      field("E-mail of the member", email), field("Role", role), submit)
      : h("p", { class: "muted", id: "your-role" }, `You are ${project.role === "editor" ? "an editor" : "a viewer"} of this project.`),
    h("p", { class: "muted" }, "Created ", fmtDate(project.created_at)));
}
