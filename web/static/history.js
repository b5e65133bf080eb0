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

$("token").value = localStorage.getItem("sluice-api-token") || "";
$("token").addEventListener("change", () => { localStorage.setItem("sluice-api-token", $("token").value); loadList(); });

async function call(method, path, body) {
  const init = { method, headers: {} };
  // The API token kept in this browser (shared by every page), never in a URL.
  const token = $("token").value.trim();
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
    case "ready": return [`ready: ${r.events_indexed} events` + (r.events_indexed === 0 && r.message ? ` (${r.message})` : ""), 100];
    case "failed": return ["failed: " + r.reason, 100];
    case "expired": return ["expired: " + r.reason, 0];
    default: return [r.state, 0];
  }
}

// Times as people read them: to the millisecond, without the T and the nanoseconds.
function shortTime(t) {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d{1,3})?\d*(Z|[+-]\d\d:\d\d)?$/.exec(t || "");
  return m ? m[1] + " " + m[2] + (m[3] || "") : (t || "");
}

async function remove(id) {
  try {
    await call("DELETE", "/" + id);
    if (id === current) {
      current = null;
      setUrl(null);
      $("current").hidden = true;
      $("search-box").hidden = true;
    }
    loadList();
  } catch (e) { $("request-error").textContent = e.message; }
}

// Highlights what the search matched in a line: the term or substring (any case), or
// the regular expression.
function highlight(cell, text) {
  const q = lastQuery && lastQuery.get("q");
  if (!q) { cell.textContent = text; return; }
  let re;
  try {
    re = lastQuery.get("mode") === "regex"
      ? new RegExp(q, "gi")
      : new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi");
  } catch { cell.textContent = text; return; }
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (!m[0]) break;
    cell.append(text.slice(last, m.index));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    cell.append(mark);
    last = m.index + m[0].length;
  }
  cell.append(text.slice(last));
}

function setUrl(id) {
  const u = new URL(location.href);
  if (id) u.searchParams.set("id", id); else u.searchParams.delete("id");
  history.replaceState(null, "", u);
}

async function loadList() {
  try {
    // Deleted and expired requests have no index left: not worth a row.
    const requests = (await call("GET", "")).requests.filter((r) => r.state !== "expired");
    const t = $("requests");
    t.replaceChildren();
    if (!requests.length) return;
    const head = t.createTHead().insertRow();
    for (const h of ["request", "state", "events", "expires", ""]) {
      const th = document.createElement("th"); th.scope = "col"; th.textContent = h; head.appendChild(th);
    }
    const body = t.createTBody();
    for (const r of requests) {
      const row = body.insertRow();
      const a = document.createElement("button");
      a.className = "link"; a.textContent = r.name; a.onclick = () => show(r.id);
      row.insertCell().appendChild(a);
      row.insertCell().textContent = r.state;
      row.insertCell().textContent = r.events_indexed;
      row.insertCell().textContent = shortTime(r.expires_at || "");
      const del = document.createElement("button");
      del.className = "link"; del.textContent = "delete"; del.setAttribute("aria-label", "delete " + r.name);
      del.onclick = () => remove(r.id);
      row.insertCell().appendChild(del);
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
  $("state").className = r.state === "failed" ? "error" : (r.state === "ready" && r.events_indexed === 0 ? "notice" : "muted");
  $("bar").firstElementChild.style.width = pct + "%";
  $("expires").textContent = r.expires_at ? "expires " + shortTime(r.expires_at) + " UTC" : "";
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
  for (const k of ["from", "to", "host", "site"]) if ($(k).value.trim()) p.set(k, $(k).value.trim());
  if ($("status-filter").value.trim()) p.set("status", $("status-filter").value.trim());
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
  const time = tr.insertCell(); time.className = "time"; time.textContent = shortTime(l.time); time.title = l.time;
  tr.insertCell().textContent = l.host;
  const c = tr.insertCell();
  const a = document.createElement("a");
  a.href = "live?crawl=" + encodeURIComponent(l.crawl);   // the live view, filtered to this crawl
  a.textContent = l.crawl;
  a.title = "live view of " + l.crawl;
  c.appendChild(a);
  const t = tr.insertCell(); t.className = "line"; highlight(t, l.line);
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

function svgEl(name, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

async function histogram() {
  const p = new URLSearchParams(lastQuery);
  p.set("buckets", "60");
  try {
    const h = await call("GET", `/${current}/histogram?${p}`);
    const max = Math.max(1, ...h.counts);
    const svg = $("histogram");
    svg.replaceChildren();
    const W = 900, H = 140, left = 48, right = 8, top = 8, bottom = 30;
    const bw = (W - left - right) / Math.max(1, h.counts.length);
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    svg.appendChild(svgEl("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }));
    svg.appendChild(svgEl("line", { class: "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }));
    for (const v of [0, Math.round(max / 2), max]) {
      svg.appendChild(svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toLocaleString("en-US")));
    }
    h.counts.forEach((n, i) => {
      const fromUs = h.from_us + i * h.bucket_us;
      const from = new Date(fromUs / 1000).toISOString();
      const to = new Date(Math.min(h.to_us, fromUs + h.bucket_us) / 1000).toISOString();
      const x = left + i * bw;
      const r = svgEl("rect", { class: "bar", x: x + 0.5, y: y(n), width: Math.max(1, bw - 1), height: Math.max(n ? 1 : 0, y(0) - y(n)) });
      r.appendChild(svgEl("title", {}, `${n.toLocaleString("en-US")} from ${shortTime(from)} to ${shortTime(to)}`));
      r.addEventListener("click", () => { $("from").value = from; $("to").value = to; search(); });
      svg.appendChild(r);
      if (i % 10 === 0) {
        svg.appendChild(svgEl("text", { x: x, y: H - bottom + 14 }, shortTime(from).slice(5, 16)));
      }
    });
    $("hist-label").textContent = `${h.total.toLocaleString("en-US")} matches from ${shortTime(new Date(h.from_us / 1000).toISOString())} to ${shortTime(new Date(h.to_us / 1000).toISOString())} UTC` +
      (h.stats.timed_out ? " (counting stopped at the time limit)." : ".");
  } catch (e) { $("search-error").textContent = e.message; }
}

$("request-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("request-error").textContent = "";
  for (const k of ["start", "end"]) {
    const v = $(k).value.trim();
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(v) || isNaN(Date.parse(v))) {
      $("request-error").textContent = `${k} "${v}" is not an RFC 3339 time: write it like 2026-11-20T00:00:00Z`;
      $(k).focus();
      return;
    }
  }
  try {
    const r = await call("POST", "", { crawl: $("crawl").value.trim(), start: $("start").value.trim(), end: $("end").value.trim() });
    lastQuery = null;
    await show(r.id);
    loadList();
  } catch (e) { $("request-error").textContent = e.message; }
};
$("search-form").onsubmit = (ev) => { ev.preventDefault(); search(); };
$("more").onclick = () => page();
$("delete").onclick = () => current && remove(current);
const iso = (d) => d.toISOString().replace(/\.\d+Z$/, "Z");
for (const b of document.querySelectorAll("[data-range]")) {
  b.onclick = () => {
    const end = new Date(); end.setUTCSeconds(0, 0); end.setUTCMinutes(end.getUTCMinutes() + 1);
    $("end").value = iso(end);
    $("start").value = iso(new Date(end - Number(b.dataset.range) * 1000));
  };
}
$("day").onchange = () => {
  if (!$("day").value) return;
  const start = new Date($("day").value + "T00:00:00Z");
  $("start").value = iso(start);
  $("end").value = iso(new Date(+start + 86400e3));
};
// Crawl names for the picker, from the buck's crawls API (archie alone has none).
fetch(base + "/crawls", { headers: localStorage.getItem("sluice-api-token") ? { authorization: "Bearer " + localStorage.getItem("sluice-api-token") } : {} })
  .then((r) => (r.ok ? r.json() : []))
  .then((crawls) => {
    for (const c of crawls) { const o = document.createElement("option"); o.value = c.crawl; $("crawl-list").appendChild(o); }
  })
  .catch(() => { /* the picker is a convenience */ });

// Defaults: the last 24 hours, to the minute.
const now = new Date(); now.setUTCSeconds(0, 0);
$("end").value = now.toISOString().replace(".000Z", "Z");
$("start").value = new Date(now - 86400e3).toISOString().replace(".000Z", "Z");
if (params.get("crawl")) $("crawl").value = params.get("crawl");
loadList();
if (params.get("id")) show(params.get("id"));
