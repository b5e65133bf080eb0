// The crawls page: every crawl this buck holds (GET ../crawls) and, for the chosen one,
// its summary per step (GET ../crawls/<crawl>/summary) as a stacked bar chart by status
// class with a table of the same numbers. The chosen crawl and range live in the URL.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("token").value = localStorage.getItem("sluice-api-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("sluice-api-token", $("token").value));

// Status classes in the order the API lists them, each with a colour that keeps 3:1
// against white (bars) and a name (the chart is never read by colour alone: the table
// below has every number).
const CLASSES = [
  ["2xx", "#2e7d32"], ["3xx", "#1f5f85"], ["4xx", "#9a5b00"], ["5xx", "#a1221b"],
  ["failed", "#6a1b9a"], ["1xx", "#00695c"], ["other", "#5f6b76"],
];

function apiBase() {
  // The page lives at <base>/ui/crawls; the API at <base>/.
  return location.pathname.replace(/\/ui\/crawls$/, "/");
}

async function getJson(path) {
  const headers = {};
  const token = $("token").value.trim();
  if (token) headers.authorization = "Bearer " + token;
  const r = await fetch(apiBase() + path, { headers });
  const text = await r.text();
  if (!r.ok) {
    let message = text;
    try { message = JSON.parse(text).error || text; } catch { /* not JSON */ }
    throw new Error(r.status + ": " + message);
  }
  return JSON.parse(text);
}

function setStatus(text, error) {
  $("status").className = error ? "error" : "";
  $("status").textContent = text;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

const fmt = (n) => Number(n).toLocaleString("en-US");
const time = (t) => (t ? t.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "–");

async function loadCrawls() {
  setStatus("loading…");
  let crawls;
  try {
    crawls = await getJson("crawls");
  } catch (e) {
    setStatus("cannot list crawls: " + e.message, true);
    return;
  }
  const body = $("crawls").tBodies[0];
  body.textContent = "";
  for (const c of crawls) {
    const tr = document.createElement("tr");
    tr.dataset.crawl = c.crawl;
    const a = document.createElement("a");
    a.href = "?crawl=" + encodeURIComponent(c.crawl);
    a.textContent = c.crawl;
    a.addEventListener("click", (ev) => { ev.preventDefault(); choose(c.crawl, "24h"); });
    cell(tr, "").appendChild(a);
    cell(tr, fmt(c.rows), "num rows");
    cell(tr, time(c.first_event));
    cell(tr, time(c.last_event));
    cell(tr, fmt(c.lines_last_minute), "num");
    cell(tr, c.segments.map((s) => s.name + (s.state === "open" ? " (open)" : "")).join(", "));
    const homes = cell(tr, "");
    c.homes.forEach((h, i) => {
      if (i) homes.append(", ");
      const link = document.createElement("a");
      link.href = h.http_url.replace(/\/$/, "") + "/ui/crawls?crawl=" + encodeURIComponent(c.crawl);
      link.textContent = h.id + (h.this_buck ? " (this buck)" : "");
      homes.appendChild(link);
      const state = document.createElement("span");
      state.className = "home-state";
      state.dataset.url = h.http_url;
      homes.append(" ", state);
    });
    body.appendChild(tr);
  }
  setStatus(crawls.length + (crawls.length === 1 ? " crawl" : " crawls"));
  homeStates();
  const chosen = params.get("crawl");
  if (chosen) choose(chosen, params.get("range") || "24h", false);
}

// Whether each home answers its /healthz (the cluster's bucks allow this page's origin),
// said in words: "up", "degraded: ..." or "down".
async function homeStates() {
  const spans = [...document.querySelectorAll(".home-state")];
  const urls = [...new Set(spans.map((s) => s.dataset.url))];
  await Promise.all(urls.map(async (url) => {
    let text;
    try {
      const r = await fetch(url.replace(/\/$/, "") + "/healthz", { signal: AbortSignal.timeout(3000) });
      const body = (await r.text()).trim();
      text = r.ok ? (body.startsWith("degraded") ? body : "up") : "down (" + r.status + ")";
    } catch {
      text = "down";
    }
    for (const s of spans.filter((x) => x.dataset.url === url)) {
      s.textContent = "(" + text + ")";
      s.className = "home-state " + (text === "up" ? "up" : "down");
    }
  }));
}

function rangeOf(range) {
  const now = new Date();
  if (range === "7d") {
    const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
    return { from: new Date(to - 7 * 86400e3), to, step: 86400 };
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(range)) {
    const from = new Date(range + "T00:00:00Z");
    return { from, to: new Date(+from + 86400e3), step: 3600 };
  }
  const to = new Date(Math.ceil(now / 3600e3) * 3600e3);
  return { from: new Date(to - 24 * 3600e3), to, step: 3600 };
}

async function choose(crawl, range, push = true) {
  if (push) {
    params.set("crawl", crawl);
    params.set("range", range);
    history.replaceState(null, "", "?" + params);
  }
  for (const tr of $("crawls").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.crawl === crawl);
  for (const b of document.querySelectorAll("[data-range]")) b.setAttribute("aria-pressed", String(b.dataset.range === range));
  $("summary").hidden = false;
  $("summary-title").textContent = "Summary of " + crawl;
  const { from, to, step } = rangeOf(range);
  const iso = (d) => d.toISOString().replace(/\.\d+Z$/, "Z");
  setStatus("summarizing " + crawl + "…");
  const t0 = performance.now();
  let s;
  try {
    s = await getJson("crawls/" + encodeURIComponent(crawl) + "/summary?from=" + iso(from) + "&to=" + iso(to) + "&step=" + step + "&top=1");
  } catch (e) {
    setStatus("cannot summarize " + crawl + ": " + e.message, true);
    return;
  }
  draw(s);
  const total = s.steps.reduce((a, x) => a + x.lines, 0);
  setStatus(fmt(total) + " lines in " + s.steps.length + " steps, in " + Math.round(performance.now() - t0) + " ms");
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function draw(s) {
  const svg = $("chart");
  svg.textContent = "";
  const W = 900, H = 260, left = 56, right = 8, top = 10, bottom = 36;
  const max = Math.max(1, ...s.steps.map((x) => x.lines));
  const bw = (W - left - right) / Math.max(1, s.steps.length);
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  svg.appendChild(svgEl("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }));
  svg.appendChild(svgEl("line", { class: "axis", x1: left, y1: H - bottom, x2: W - right, y2: H - bottom }));
  for (const v of [0, max / 2, max]) {
    svg.appendChild(svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(Math.round(v))));
  }
  const every = Math.ceil(s.steps.length / 12);
  s.steps.forEach((step, i) => {
    const x = left + i * bw;
    let acc = 0;
    for (const [name, colour] of CLASSES) {
      const n = step.status[name] || 0;
      if (!n) continue;
      const r = svgEl("rect", { x: x + 1, y: y(acc + n), width: Math.max(1, bw - 2), height: y(acc) - y(acc + n), fill: colour });
      r.appendChild(svgEl("title", {}, step.start + " " + name + ": " + fmt(n)));
      svg.appendChild(r);
      acc += n;
    }
    if (i % every === 0) {
      const label = s.step >= 86400 ? step.start.slice(5, 10) : step.start.slice(11, 16);
      svg.appendChild(svgEl("text", { x: x + bw / 2, y: H - bottom + 14, "text-anchor": "middle" }, label));
    }
  });
  svg.appendChild(svgEl("text", { x: left, y: H - 6 }, "UTC, " + (s.step >= 86400 ? "days" : "hours") + " from " + s.from.replace("T", " ")));
  $("chart-desc").textContent = "Lines per " + (s.step >= 86400 ? "day" : "hour") + " by status class, " + s.from + " to " + s.to + "; the table below has every number.";
  const legend = $("legend");
  legend.textContent = "";
  for (const [name, colour] of CLASSES) {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = colour;
    li.append(sw, name);
    legend.appendChild(li);
  }
  const body = $("steps").tBodies[0];
  body.textContent = "";
  for (const step of s.steps) {
    const tr = document.createElement("tr");
    cell(tr, time(step.start));
    cell(tr, fmt(step.lines), "num lines");
    for (const name of ["2xx", "3xx", "4xx", "5xx", "failed", "other"]) {
      cell(tr, fmt((step.status[name] || 0) + (name === "other" ? step.status["1xx"] || 0 : 0)), "num");
    }
    cell(tr, fmt(step.bytes), "num");
    cell(tr, fmt(step.distinct_hosts), "num");
    cell(tr, step.top_hosts[0] ? step.top_hosts[0].host + " (" + fmt(step.top_hosts[0].lines) + ")" : "–");
    body.appendChild(tr);
  }
}

$("refresh").addEventListener("click", loadCrawls);
for (const b of document.querySelectorAll("[data-range]")) {
  b.addEventListener("click", () => params.get("crawl") && choose(params.get("crawl"), b.dataset.range));
}
$("day").addEventListener("change", () => params.get("crawl") && $("day").value && choose(params.get("crawl"), $("day").value));
loadCrawls();
