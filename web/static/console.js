// The SQL console. It keeps its state in the URL so a query can be shared as a link; SQL
// from a link only fills the form, it runs when the user clicks Run.
//
// Results are drawn as a virtual table: the rows are kept as parsed, and only the rows in
// view (plus a margin) are in the page, so 100,000 rows draw as fast as 100. Downloads
// ask the server for the whole result as CSV or NDJSON (format=..), streamed by it; the
// page never builds them.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// The token stays in this browser (never in the shareable URL).
$("token").value = localStorage.getItem("sluice-api-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("sluice-api-token", $("token").value));
for (const k of ["crawl", "from", "to", "sql"]) if (params.get(k)) $(k).value = params.get(k);

const ROW_HEIGHT = 22;
const MARGIN_ROWS = 20;
let running = null;

function apiBase() {
  // The page lives at <base>/ui/sql; the read API at <base>/.
  return location.pathname.replace(/\/ui\/sql$/, "/");
}

function headers(extra) {
  const h = Object.assign({ "content-type": "application/sql;charset=utf-8" }, extra);
  const token = $("token").value.trim();
  if (token) h.authorization = "Bearer " + token;
  return h;
}

function queryUrl(format) {
  const crawl = $("crawl").value.trim(), from = $("from").value.trim(), to = $("to").value.trim();
  let url;
  if (from || to) {
    const p = new URLSearchParams({ crawl });
    if (from) p.set("from", from);
    if (to) p.set("to", to);
    if (format) p.set("format", format);
    url = apiBase() + "sql?" + p;
  } else {
    url = apiBase() + "?segment=" + encodeURIComponent(crawl) + (format ? "&format=" + format : "");
  }
  return url;
}

function setStatus(text, error) {
  $("status").className = error ? "error" : "";
  $("status").textContent = text;
}

function errorText(status, text) {
  try { return status + ": " + (JSON.parse(text).error || text); } catch { return status + ": " + text; }
}

function setRunning(controller) {
  running = controller;
  $("run").disabled = !!controller;
  $("cancel").disabled = !controller;
}

async function run() {
  if (running) return;
  const crawl = $("crawl").value.trim();
  if (!crawl) { setStatus("say which crawl to query", true); $("crawl").focus(); return; }
  const sql = $("sql").value;
  const q = new URLSearchParams({ crawl, sql });
  for (const k of ["from", "to"]) if ($(k).value.trim()) q.set(k, $(k).value.trim());
  history.replaceState(null, "", "?" + q.toString());
  const controller = new AbortController();
  setRunning(controller);
  setStatus("running…");
  $("notice").hidden = true;
  $("out").textContent = "";
  $("cell").hidden = true;
  const t0 = performance.now();
  try {
    const r = await fetch(queryUrl(), { method: "POST", headers: headers(), body: sql, signal: controller.signal });
    const text = await r.text();
    if (!r.ok) { setStatus(errorText(r.status, text), true); return; }
    let rows = JSON.parse(text);
    // A reply cut short ends with one marker object instead of a row.
    const last = rows[rows.length - 1];
    let notice = null;
    if (last && typeof last === "object" && ("_sluice_truncated" in last || "_sluice_error" in last)) {
      rows = rows.slice(0, -1);
      notice = "_sluice_truncated" in last
        ? "Only the first " + rows.length.toLocaleString("en-US") + " rows: " + last._sluice_truncated + ". Download CSV or NDJSON for the whole result, or narrow the query."
        : "The query failed after " + rows.length.toLocaleString("en-US") + " rows: " + last._sluice_error;
    }
    const fetched = performance.now() - t0;
    const t1 = performance.now();
    render(rows);
    const drawn = performance.now() - t1;
    if (notice) { $("notice").textContent = notice; $("notice").hidden = false; }
    const days = r.headers.get("x-sluice-days");
    setStatus(rows.length.toLocaleString("en-US") + " rows in " + Math.round(fetched) + " ms, drawn in " + Math.round(drawn) + " ms" + (days ? " · days: " + days : ""));
    $("out").dataset.drawMs = String(drawn);
  } catch (e) {
    if (e.name === "AbortError") setStatus("cancelled");
    else setStatus(String(e), true);
  } finally {
    setRunning(null);
  }
}

function render(rows) {
  const out = $("out");
  out.textContent = "";
  out.scrollTop = 0;
  if (!rows.length) { out.textContent = "(no rows)"; return; }
  const cols = Object.keys(rows[0]);
  // Column widths from the names and the first rows' values, in characters, capped.
  const widths = cols.map((c) => {
    let w = c.length;
    for (let i = 0; i < Math.min(rows.length, 200); i++) {
      const v = rows[i][c];
      w = Math.max(w, v === null ? 4 : String(v).length);
    }
    return Math.min(Math.max(w, 4), 60) + 2;
  });
  const table = document.createElement("table");
  table.setAttribute("aria-rowcount", String(rows.length + 1));
  const colgroup = document.createElement("colgroup");
  for (const w of widths) { const col = document.createElement("col"); col.style.width = w + "ch"; colgroup.appendChild(col); }
  table.appendChild(colgroup);
  const head = table.createTHead().insertRow();
  for (const c of cols) { const th = document.createElement("th"); th.scope = "col"; th.textContent = c; th.title = c; head.appendChild(th); }
  const body = table.createTBody();
  out.appendChild(table);
  let drawn = [-1, -1];
  const draw = () => {
    const first = Math.max(0, Math.floor(out.scrollTop / ROW_HEIGHT) - MARGIN_ROWS);
    const visible = Math.ceil(out.clientHeight / ROW_HEIGHT) + 2 * MARGIN_ROWS;
    const last = Math.min(rows.length, first + visible);
    if (first === drawn[0] && last === drawn[1]) return;
    drawn = [first, last];
    body.textContent = "";
    const top = body.insertRow();
    top.style.height = first * ROW_HEIGHT + "px";
    top.setAttribute("aria-hidden", "true");
    for (let i = first; i < last; i++) {
      const tr = body.insertRow();
      tr.setAttribute("aria-rowindex", String(i + 2));
      for (const c of cols) {
        const v = rows[i][c];
        const td = tr.insertCell();
        if (v === null) { td.textContent = "NULL"; td.className = "null"; } else { td.textContent = String(v); }
        td.tabIndex = -1;
      }
    }
    const bottom = body.insertRow();
    bottom.style.height = (rows.length - last) * ROW_HEIGHT + "px";
    bottom.setAttribute("aria-hidden", "true");
  };
  out.onscroll = () => requestAnimationFrame(draw);
  // A click shows the whole value (cells are cut to one line).
  body.onclick = (e) => {
    const td = e.target.closest("td");
    if (!td || !td.parentElement.hasAttribute("aria-rowindex")) return;
    $("cell").textContent = td.textContent;
    $("cell").hidden = false;
  };
  draw();
}

async function download(format) {
  const crawl = $("crawl").value.trim();
  if (!crawl) { setStatus("say which crawl to query", true); return; }
  setStatus("downloading " + format + "…");
  try {
    const r = await fetch(queryUrl(format), { method: "POST", headers: headers(), body: $("sql").value });
    if (!r.ok) { setStatus(errorText(r.status, await r.text()), true); return; }
    // The server streams the file; the browser keeps it as a blob and saves it.
    const blob = await r.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = crawl + "." + (format === "csv" ? "csv" : "ndjson");
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    setStatus("downloaded " + blob.size.toLocaleString("en-US") + " bytes as " + a.download);
  } catch (e) {
    setStatus(String(e), true);
  }
}

// Tables and views of the crawl, with their columns (a CSV header of `LIMIT 0`). A newer
// call (the crawl changed again) wins over one still waiting for its replies.
let schemaGeneration = 0;
async function loadSchema() {
  const generation = ++schemaGeneration;
  const crawl = $("crawl").value.trim();
  const list = $("schema").querySelector("ul");
  const hint = $("schema").querySelector("p");
  list.textContent = "";
  if (!crawl) { hint.hidden = false; return; }
  hint.hidden = true;
  for (const view of ["events", "crawled_url", "crawled_urls"]) {
    if (generation !== schemaGeneration) return;
    const li = document.createElement("li");
    const name = document.createElement("b");
    name.textContent = view;
    name.title = "SELECT * FROM " + view + " LIMIT 100";
    name.addEventListener("click", () => { $("sql").value = "SELECT * FROM " + view + " LIMIT 100;"; $("sql").focus(); });
    li.appendChild(name);
    const cols = document.createElement("span");
    li.appendChild(cols);
    list.appendChild(li);
    try {
      const url = apiBase() + "?segment=" + encodeURIComponent(crawl) + "&format=csv";
      const r = await fetch(url, { method: "POST", headers: headers(), body: "SELECT * FROM " + view + " LIMIT 0" });
      const text = await r.text();
      if (generation !== schemaGeneration) return;
      cols.textContent = r.ok ? text.trim().split(",").join(", ") : errorText(r.status, text);
    } catch (e) {
      cols.textContent = String(e);
    }
  }
}

// Crawl names for the picker, from the crawls API.
async function loadCrawls() {
  try {
    const r = await fetch(apiBase() + "crawls", { headers: headers() });
    if (!r.ok) return;
    const list = $("crawl-list");
    for (const c of await r.json()) {
      const o = document.createElement("option");
      o.value = c.crawl;
      list.appendChild(o);
    }
  } catch { /* the picker is a convenience */ }
}

$("run").addEventListener("click", run);
$("cancel").addEventListener("click", () => running && running.abort());
$("csv").addEventListener("click", () => download("csv"));
$("ndjson").addEventListener("click", () => download("ndjson"));
$("crawl").addEventListener("change", loadSchema);
$("list-schema").addEventListener("click", loadSchema);
$("sql").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
document.addEventListener("keydown", (e) => { if (e.key === "Escape" && running) running.abort(); });
// Nothing else runs on load: a link must not make the page query on the visitor's
// credentials (the crawl list names crawls only).
loadCrawls();
