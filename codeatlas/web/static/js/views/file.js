// One file: highlighted lines with numbers (server-side Pygments), the selected range from
// the address (#L10 or #L10-L20, shift-click extends it), and the file's symbols.
import { api } from "../api.js";
import { banner, errorText, h, link, page } from "../ui.js";

function parseRange(hash) {
  const m = /^#L(\d+)(?:-L?(\d+))?$/.exec(hash || "");
  if (!m) return null;
  const a = Number(m[1]);
  const b = m[2] ? Number(m[2]) : a;
  return [Math.min(a, b), Math.max(a, b)];
}

export async function fileView(projectId, documentId) {
  const [project, doc] = await Promise.all([
    api("GET", `/projects/${projectId}`),
    api("GET", `/projects/${projectId}/files/${documentId}`),
  ]);
  const main = page(doc.path);
  main.prepend(h("p", {}, link(`/projects/${projectId}`, "← " + project.name)));
  const meta = h("p", { class: "muted" }, `${doc.language || "plain text"} · ${doc.size} bytes · version ${doc.version} · ${doc.status}`);
  const code = h("pre", { class: "code highlight", id: "code", tabindex: "0", "aria-label": `Content of ${doc.path}` });
  const symbols = h("ul", { class: "symbols", id: "symbols" });
  main.append(meta, h("div", { class: "grid2" },
    h("nav", { "aria-labelledby": "sym-h" }, h("h2", { id: "sym-h", text: "Symbols" }), symbols),
    h("section", { "aria-label": "Code" }, code)));

  let anchor = null;
  try {
    const data = await api("GET", `/projects/${projectId}/files/${documentId}/highlighted`);
    const frag = document.createDocumentFragment();
    data.lines.forEach((html, i) => {
      const n = i + 1;
      const num = h("a", { class: "ln", href: `#L${n}`, "aria-label": `Line ${n}` }, String(n));
      num.addEventListener("click", (e) => {
        e.preventDefault();
        const range = e.shiftKey && anchor ? [Math.min(anchor, n), Math.max(anchor, n)] : [n, n];
        if (!e.shiftKey) anchor = n;
        const hash = range[0] === range[1] ? `#L${range[0]}` : `#L${range[0]}-L${range[1]}`;
        history.replaceState(null, "", hash);
        select(false);
      });
      // `html` is Pygments output for one line: escaped text in token spans
      frag.append(h("span", { class: "line", id: `L${n}` }, num, h("span", { class: "lc", html })));
    });
    code.replaceChildren(frag);
  } catch (err) {
    code.replaceChildren();
    code.replaceWith(banner(err.code === "NOT_VIEWABLE" || err.code === "FILE_TOO_LARGE_TO_VIEW" ? "warn" : "error", errorText(err), { id: "file-error" }));
  }

  const syms = doc.symbols || [];
  symbols.replaceChildren(...(syms.length ? syms.map((s) => h("li", {},
    link(`#L${s.start_line}-L${s.end_line}`, (s.parent ? s.parent + "." : "") + s.name, { class: "symbol-link" }),
    " ", h("span", { class: "kind", text: s.kind }))) : [h("li", { class: "muted" }, ["indexed", "parsed", "searchable"].includes(doc.status) ? "No symbols." : "Not parsed yet.")]));

  function select(scroll) {
    code.querySelectorAll(".line.hl").forEach((el) => el.classList.remove("hl"));
    const range = parseRange(location.hash);
    if (!range) return;
    for (let n = range[0]; n <= range[1]; n++) document.getElementById(`L${n}`)?.classList.add("hl");
    const first = document.getElementById(`L${range[0]}`);
    if (first && scroll) first.scrollIntoView({ block: "center" });
  }
  select(true);
  const onHash = () => select(true);
  window.addEventListener("hashchange", onHash);
  return () => window.removeEventListener("hashchange", onHash);
}
