"use strict";
// The page lives at <base>/ui/history and the API at <base>/history, whatever <base> is.
const base = location.pathname.replace(/\/ui\/history\/?$/, "");
const api = (path) => base + "/history" + path;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let current = null;     // id of the request shown
let pollTimer = null;
let nextCursor = null;
let lastQuery = null;

async function call(method, path, body) {
  const init = { method, headers: {} };
  // The API token the SQL console keeps in this browser, if any (never in a URL).
  const token = localStorage.getItem("sluice-api-token");
  if (token) init.headers.authorization = "Bearer " + token;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(api(path), init);
  let data = null;
  try { data = await r.json(); } catch (_) { /* an empty or non-JSON answer */ }
  if (!r.ok) throw new Error((data && data.error) || (r.status + " " + r.statusText));
  return data;
}

function fmtBytes(n) {
  if (n < 1e3) return n + " B";
  if (n < 1e6) return (n / 1e3).toFixed(1) + " kB";
  if (n < 1e9) return (n / 1e6).toFixed(1) + " MB";
  return (n / 1e9).toFixed(2) + " GB";
}

function describe(r) {
  switch (r.state) {
    case "queued": return ["queued", 0];
    case "fetching": return [`fetching ${r.done} of ${r.total} segments, ${fmtBytes(r.bytes)}`, r.total ? 10 * r.done / r.total : 0];
    case "indexing": return [`indexing ${r.percent}% of ${r.events_total} events (searchable so far: ${r.events_indexed})`, 10 + 0.9 * r.percent];
    case "ready": return [`ready: ${r.events_indexed} events`, 100];
    case "failed": return ["failed: " + r.reason, 100];
    case "expired": return ["expired: " + r.reason, 0];
    default: return [r.state, 0];
  }
}

function setUrl(id) {
  const u = new URL(location.href);
  if (id) u.searchParams.set("id", id); else u.searchParams.delete("id");
  history.replaceState(null, "", u);
}

async function loadList() {
  try {
    const { requests } = await call("GET", "");
    const t = $("requests");
    t.replaceChildren();
    if (!requests.length) return;
    const head = t.insertRow();
    for (const h of ["request", "state", "events", "expires"]) {
      const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
    }
    for (const r of requests) {
      const row = t.insertRow();
      const a = document.createElement("button");
      a.className = "link"; a.textContent = r.name; a.onclick = () => show(r.id);
      row.insertCell().appendChild(a);
      row.insertCell().textContent = r.state;
      row.insertCell().textContent = r.events_indexed;
      row.insertCell().textContent = r.expires_at || "";
    }
  } catch (e) { $("request-error").textContent = e.message; }
}

async function show(id) {
  current = id;
  lastQuery = null;
  setUrl(id);
  $("current").hidden = false;
  $("results").tBodies[0].replaceChildren();
  $("histogram").replaceChildren();
  $("stats").textContent = "";
  $("more").hidden = true;
  clearTimeout(pollTimer);
  await poll();
}

async function poll() {
  const id = current;
  let r;
  try { r = await call("GET", "/" + id); } catch (e) {
    $("state").textContent = e.message;
    return;
  }
  if (id !== current) return;
  const [text, pct] = describe(r);
  $("name").textContent = r.name;
  $("state").textContent = text;
  $("state").className = r.state === "failed" ? "error" : "muted";
  $("bar").firstElementChild.style.width = pct + "%";
  $("expires").textContent = r.expires_at ? "expires " + r.expires_at : "";
  $("message").textContent = r.message || "";
  const searchable = r.state === "ready" || r.state === "indexing";
  $("search-box").hidden = !searchable;
  if (searchable && !lastQuery) search();
  if (["queued", "fetching", "indexing"].includes(r.state)) {
    pollTimer = setTimeout(poll, 500);
  } else {
    loadList();
  }
}

function query() {
  const p = new URLSearchParams();
  p.set("q", $("q").value);
  p.set("mode", $("mode").value);
  for (const k of ["from", "to", "host"]) if ($(k).value.trim()) p.set(k, $(k).value.trim());
  return p;
}

async function search() {
  lastQuery = query();
  nextCursor = null;
  $("results").tBodies[0].replaceChildren();
  $("search-error").textContent = "";
  await Promise.all([page(), histogram()]);
}

async function page() {
  const p = new URLSearchParams(lastQuery);
  p.set("order", $("order").value);
  p.set("limit", "200");
  if (nextCursor) p.set("cursor", nextCursor);
  try {
    const r = await call("GET", `/${current}/search?${p}`);
    const body = $("results").tBodies[0];
    for (const l of r.lines) body.appendChild(lineRow(l, ""));
    nextCursor = r.next_cursor;
    $("more").hidden = !nextCursor;
    const s = r.stats;
    $("stats").textContent = `${body.rows.length} lines shown; ${s.rows_scanned} rows scanned in ${s.took_ms} ms` +
      ` (narrowed by ${s.narrowed_by})` + (s.complete ? "" : `; index still building (${s.events_indexed} events so far)`) +
      (s.timed_out ? "; stopped at the time limit: press more to go on" : "");
  } catch (e) { $("search-error").textContent = e.message; }
}

function lineRow(l, cls) {
  const tr = document.createElement("tr");
  if (cls) tr.className = cls;
  tr.insertCell().textContent = l.time;
  tr.insertCell().textContent = l.host;
  const c = tr.insertCell();
  const a = document.createElement("a");
  a.href = "live?crawl=" + encodeURIComponent(l.crawl);   // the live view, filtered to this crawl
  a.textContent = l.crawl;
  a.title = "live view of " + l.crawl;
  c.appendChild(a);
  const t = tr.insertCell(); t.className = "line"; t.textContent = l.line;
  const ctx = document.createElement("button");
  ctx.className = "link"; ctx.textContent = "context"; ctx.onclick = () => context(l.event, tr);
  tr.insertCell().appendChild(ctx);
  return tr;
}

async function context(event, tr) {
  try {
    const r = await call("GET", `/${current}/context?event=${encodeURIComponent(event)}&before=5&after=5`);
    const rows = r.lines.map((l) => lineRow(l, l.event === event ? "hit" : "context"));
    tr.replaceWith(...rows);
  } catch (e) { $("search-error").textContent = e.message; }
}

async function histogram() {
  const p = new URLSearchParams(lastQuery);
  p.set("buckets", "60");
  try {
    const h = await call("GET", `/${current}/histogram?${p}`);
    const max = Math.max(1, ...h.counts);
    const div = $("histogram");
    div.replaceChildren();
    h.counts.forEach((n, i) => {
      const b = document.createElement("div");
      const from = new Date((h.from_us + i * h.bucket_us) / 1000).toISOString();
      const to = new Date(Math.min(h.to_us, h.from_us + (i + 1) * h.bucket_us) / 1000).toISOString();
      b.style.height = (100 * n / max) + "%";
      b.title = `${n} from ${from} to ${to}`;
      b.onclick = () => { $("from").value = from; $("to").value = to; search(); };
      div.appendChild(b);
    });
    $("hist-label").textContent = `${h.total} matches from ${new Date(h.from_us / 1000).toISOString()} to ${new Date(h.to_us / 1000).toISOString()}` +
      (h.stats.timed_out ? " (counting stopped at the time limit)" : "");
  } catch (e) { $("search-error").textContent = e.message; }
}

$("request-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("request-error").textContent = "";
  try {
    const r = await call("POST", "", { crawl: $("crawl").value.trim(), start: $("start").value.trim(), end: $("end").value.trim() });
    lastQuery = null;
    await show(r.id);
    loadList();
  } catch (e) { $("request-error").textContent = e.message; }
};
$("search-form").onsubmit = (ev) => { ev.preventDefault(); search(); };
$("more").onclick = () => page();

// Defaults: the last 24 hours, to the minute.
const now = new Date(); now.setUTCSeconds(0, 0);
$("end").value = now.toISOString().replace(".000Z", "Z");
$("start").value = new Date(now - 86400e3).toISOString().replace(".000Z", "Z");
if (params.get("crawl")) $("crawl").value = params.get("crawl");
loadList();
if (params.get("id")) show(params.get("id"));
