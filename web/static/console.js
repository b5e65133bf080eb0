// The console keeps its state in the URL so a query can be shared as a link.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// The token stays in this browser (never in the shareable URL).
$("token").value = localStorage.getItem("sluice-api-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("sluice-api-token", $("token").value));
for (const k of ["crawl", "from", "to", "sql"]) if (params.get(k)) $(k).value = params.get(k);

function apiBase() {
  // The page lives at <base>/ui/sql; the read API at <base>/.
  return location.pathname.replace(/\/ui\/sql$/, "/");
}

async function run() {
  const crawl = $("crawl").value.trim(), from = $("from").value.trim(), to = $("to").value.trim();
  const sql = $("sql").value;
  const q = new URLSearchParams({ crawl, sql });
  if (from) q.set("from", from);
  if (to) q.set("to", to);
  history.replaceState(null, "", "?" + q.toString());
  const status = $("status");
  status.className = ""; status.textContent = "running…"; $("out").textContent = "";
  let url;
  if (from || to) {
    const p = new URLSearchParams({ crawl });
    if (from) p.set("from", from);
    if (to) p.set("to", to);
    url = apiBase() + "sql?" + p;
  } else {
    url = apiBase() + "?segment=" + encodeURIComponent(crawl);
  }
  const t0 = performance.now();
  try {
    const headers = { "content-type": "application/sql;charset=utf-8" };
    const token = $("token").value.trim();
    if (token) headers.authorization = "Bearer " + token;
    const r = await fetch(url, { method: "POST", headers, body: sql });
    const text = await r.text();
    if (!r.ok) { status.className = "error"; status.textContent = r.status + " " + text; return; }
    const rows = JSON.parse(text);
    render(rows);
    const days = r.headers.get("x-sluice-days");
    status.textContent = rows.length + " rows in " + Math.round(performance.now() - t0) + " ms" + (days ? " · days: " + days : "");
  } catch (e) {
    status.className = "error"; status.textContent = String(e);
  }
}

function render(rows) {
  const out = $("out");
  if (!rows.length) { out.textContent = "(no rows)"; return; }
  const table = document.createElement("table");
  const cols = Object.keys(rows[0]);
  const head = table.createTHead().insertRow();
  for (const c of cols) { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); }
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of cols) { const v = r[c]; tr.insertCell().textContent = v === null ? "NULL" : String(v); }
  }
  out.appendChild(table);
}

$("run").addEventListener("click", run);
$("sql").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
// SQL from a URL only fills the form: it runs when the user clicks Run, so a link
// cannot make the page query on the visitor's credentials.
