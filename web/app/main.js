// The live view: loads the cluster's bucks, connects to all of them, merges what they
// send into one de-duplicated, time-ordered, bounded stream and shows it in a virtual
// list that follows the tail until the user pauses or scrolls up.

import { Bucks } from "./bucks.js";
import { FILTER_KEYS, filterFromSearch, filterToUrl, highlighter } from "./filter.js";
import { Merger, eventMillis } from "./merge.js";
import { CLICK_FILTER, ROW_H, VirtualList, highlightInto } from "./view.js";

const params = new URLSearchParams(location.search);
const num = (k, d) => {
  const v = Number(params.get(k));
  return Number.isFinite(v) && v > 0 ? v : d;
};
const MAX_LINES = num("max", 10000);
const DEDUP_MS = num("dedup_ms", 2000);
// Pending events are merged once a frame; when the tab is hidden frames stop, so merge
// anyway once this many are waiting.
const PENDING_MAX = 5000;

const $ = (id) => document.getElementById(id);
const merger = new Merger({ max: MAX_LINES, windowMs: DEDUP_MS });
let filter = filterFromSearch(location.search);
let pending = [];
let frame = 0;
let paused = false;
let pausedByScroll = false;
let newWhilePaused = 0;
let received = 0;
const dropped = new Map(); // buck -> {count, reasons}
const perBuck = new Map(); // buck -> ids received from it (for tests: what each buck sent)
const down = new Map(); // buck -> {since, detail, gap} while its connection is down
let gapSeq = 0;
let selected = null;
const rate = { count: 0, since: performance.now(), value: 0 };

const list = new VirtualList($("rows"), {
  onUserScroll(atBottom) {
    if (!atBottom && !paused) setPaused(true, true);
    else if (atBottom && paused && pausedByScroll) setPaused(false);
  },
});

function setPaused(p, byScroll = false) {
  paused = p;
  pausedByScroll = p && byScroll;
  list.follow = !p;
  if (!p) {
    newWhilePaused = 0;
    list.render(merger.rows);
  }
  showPause();
}

function showPause() {
  $("pause").textContent = paused ? "Resume" : "Pause";
  $("live").hidden = !paused;
  $("new").textContent = paused ? `${newWhilePaused.toLocaleString()} new` : "";
  $("new").hidden = !paused;
}

function onEvents(buck, batch) {
  let ids = perBuck.get(buck);
  if (!ids) perBuck.set(buck, (ids = new Set()));
  for (const e of batch.events) {
    e._t = eventMillis(e);
    e._buck = buck;
    ids.add(e.id);
    // Bounded like the buffer: the oldest ids go first.
    if (ids.size > 5 * MAX_LINES) ids.delete(ids.values().next().value);
    pending.push(e);
  }
  received += batch.events.length;
  if (pending.length >= PENDING_MAX) flush(false);
  else if (!frame) frame = requestAnimationFrame(() => flush(true));
}

function flush(render) {
  frame = 0;
  if (!pending.length && !render) return;
  const batch = pending;
  pending = [];
  const { added, trimmed } = merger.add(batch);
  rate.count += added;
  if (paused) {
    newWhilePaused += added;
    // Keep the lines in view still while the oldest leave the buffer.
    list.scrollBy(-trimmed * ROW_H);
    showPause();
  }
  if (render) list.render(merger.rows);
  showStats();
}

let statsAt = 0;
function showStats(force = false) {
  const now = performance.now();
  // A few times a second is enough for the eye, and keeps text layout off most frames.
  if (!force && now - statsAt < 250) return;
  statsAt = now;
  if (now - rate.since >= 1000) {
    rate.value = Math.round((rate.count * 1000) / (now - rate.since));
    rate.count = 0;
    rate.since = now;
  }
  $("stats").textContent =
    `${merger.rows.length.toLocaleString()} lines · ${rate.value.toLocaleString()}/s · ` +
    `${merger.duplicates.toLocaleString()} duplicates merged`;
}

const REASONS = {
  queue: "this browser fell behind",
  rate: "over the buck's events/s cap; narrow the filter",
  bus: "the buck itself fell behind",
};

function onNotice(buck, kind, p) {
  if (kind === "dropped") {
    const d = dropped.get(buck) || { count: 0, reasons: new Set() };
    d.count += p.count;
    d.reasons.add(REASONS[p.reason] || p.reason);
    dropped.set(buck, d);
    $("dropped").textContent = [...dropped]
      .map(([b, d]) => `${b}: ${d.count.toLocaleString()} dropped (${[...d.reasons].join("; ")})`)
      .join(" · ");
    $("dropped").hidden = false;
  } else if (kind === "error") {
    $("error").textContent = `${buck}: ${p.message}`;
    $("error").hidden = false;
  } else if (kind === "capped") {
    $("error").textContent = `${buck}: ${p.message}`;
    $("error").hidden = false;
  }
}

const clock = (d) => d.toISOString().slice(11, 19);

function onState(buck, state, detail, downSince) {
  let el = document.querySelector(`.badge[data-buck="${CSS.escape(buck)}"]`);
  if (!el) {
    el = document.createElement("span");
    el.className = "badge";
    el.dataset.buck = buck;
    $("bucks").appendChild(el);
  }
  el.dataset.state = state;
  // State in words too, not by colour alone.
  el.textContent = state === "red" ? `${buck} down` : state === "amber" ? `${buck} …` : buck;
  el.title = detail;
  if (state === "red" && !down.has(buck)) buckDown(buck, downSince || new Date(), detail);
  else if (state === "red") down.get(buck).detail = detail;
  else if (state === "green" && down.has(buck)) buckBack(buck);
  showBanner();
}

// A buck's connection dropped: a marker in the stream where its lines may be missing,
// until it is back and has sent what it holds from the last line seen on.
function buckDown(buck, since, detail) {
  const last = merger.rows.length ? merger.rows[merger.rows.length - 1] : null;
  const gap = {
    id: `gap:${buck}:${++gapSeq}`,
    time: last ? last.time : since.toISOString(),
    _t: last ? last._t : since.getTime(),
    _gap: { buck, since, text: "" },
  };
  gapText(gap, null);
  down.set(buck, { since, detail, gap });
  pending.push(gap);
  if (!frame) frame = requestAnimationFrame(() => flush(true));
}

function buckBack(buck) {
  const d = down.get(buck);
  down.delete(buck);
  d.gap._gap.back = new Date();
  gapText(d.gap, 0);
  list.refresh();
}

function gapText(gap, caughtUp) {
  const g = gap._gap;
  g.caughtUp = caughtUp;
  g.text = g.back
    ? `▲ buck ${g.buck} was down ${clock(g.since)}–${clock(g.back)} UTC; caught up ${caughtUp ?? 0} lines from it since the last one seen`
    : `▲ buck ${g.buck} down since ${clock(g.since)} UTC: its lines from here may be missing until it is back`;
}

function onCatchUp(buck, lines) {
  // The newest gap of this buck that is closed: the catch-up belongs to it.
  const gap = merger.rows.findLast((r) => r._gap && r._gap.buck === buck);
  if (gap && gap._gap.back) {
    gapText(gap, lines);
    list.refresh();
  }
}

// The buck's answer to a socket.io CONNECT without the right token (live::broker).
const refusedToken = (detail) => /token missing or wrong/.test(detail);

function showBanner() {
  const b = $("banner");
  const needsToken = [...down.values()].some((d) => refusedToken(d.detail));
  $("token").setAttribute("aria-invalid", String(needsToken));
  // The box shows only where a token is in play: a buck asked for one, or one is kept.
  $("token-box").hidden = !(needsToken || savedToken());
  if (!down.size) {
    b.hidden = true;
    b.textContent = "";
    return;
  }
  b.textContent = [...down]
    .map(([buck, d]) => refusedToken(d.detail)
      ? `Buck ${buck} needs the API token for the live view: ${savedToken() ? "the one entered was refused; " : ""}enter it in the token box above (kept in this browser, shared with the SQL console).`
      : `Buck ${buck} is down since ${clock(d.since)} UTC (${d.detail.replace(/^down: /, "")}); lines it alone holds may be missing until it is back.`)
    .join(" ");
  b.hidden = false;
}

function showDetail(ev) {
  selected = ev;
  if (!ev || ev._gap) {
    $("detail").hidden = true;
    return;
  }
  // The whole line: matches past the row's cut-off show here.
  highlightInto($("detail-line"), ev.line, highlighter(filter));
  const dl = $("detail-fields");
  dl.textContent = "";
  const facts = { time: ev.time, crawl: ev.crawl, crawler: ev.host, app: ev.app, format: ev.format, id: ev.id, ...(ev.fields || {}) };
  if (ev.original_len) facts.original_len = ev.original_len;
  for (const [k, v] of Object.entries(facts)) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = String(v).trim();
    dl.append(dt, dd);
  }
  $("detail").hidden = false;
}

// The API token: entered in the token box here or in the SQL console, kept in this
// browser and sent in the socket.io auth payload and `Authorization` headers, never in a
// URL, where proxies, history and Referer headers would keep it.
const savedToken = () => localStorage.getItem("sluice-api-token") || "";
const authHeaders = () => (savedToken() ? { authorization: "Bearer " + savedToken() } : {});
const bucks = new Bucks({ onEvents, onNotice, onState, onCatchUp }, { token: savedToken() || undefined });

function applyFilter(f) {
  filter = f;
  filterToUrl(filter);
  $("error").hidden = true;
  merger.clear();
  pending = [];
  for (const d of down.values()) pending.push(d.gap);
  list.setHighlight(highlighter(filter));
  list.render(merger.rows);
  bucks.subscribe(filter);
}

function formFilter() {
  const f = {};
  for (const k of FILTER_KEYS) {
    const v = $(`f-${k}`).value.trim();
    if (v) f[k] = v;
  }
  return f;
}

async function loadBucks() {
  // The page is <base>/ui/live; its own buck answers <base>/api/bucks.
  const url = new URL("../api/bucks", location.href);
  try {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    const list = await r.json();
    if (!Array.isArray(list) || !list.length) throw new Error("empty list");
    return list;
  } catch (e) {
    // Without a list, the buck that served the page is the whole cluster.
    console.warn(`live view: ${url} failed (${e.message}); using this buck only`);
    return [{ id: location.host, http_url: new URL("..", url).href }];
  }
}

for (const k of FILTER_KEYS) $(`f-${k}`).value = filter[k] || "";
$("filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  applyFilter(formFilter());
});
$("pause").addEventListener("click", () => setPaused(!paused));
// Keys: `/` jumps to the filter (as in most log viewers); Esc in a filter box clears the
// filter; Esc elsewhere closes the expanded line.
document.addEventListener("keydown", (ev) => {
  const inField = ev.target.closest && ev.target.closest("input, select, textarea");
  if (ev.key === "/" && !inField) {
    ev.preventDefault();
    $("f-text").focus();
  } else if (ev.key === "Escape" && inField && ev.target.closest("#filter")) {
    for (const k of FILTER_KEYS) $(`f-${k}`).value = "";
    applyFilter({});
  }
});
// Crawl names for the crawl box, from this buck's crawls API.
function loadCrawls() {
  fetch(new URL("../crawls", location.href), { headers: authHeaders() })
    .then((r) => (r.ok ? r.json() : []))
    .then((crawls) => {
      $("crawl-list").replaceChildren(...crawls.map((c) => {
        const o = document.createElement("option");
        o.value = c.crawl;
        return o;
      }));
    })
    .catch(() => { /* the picker is a convenience */ });
}
loadCrawls();
$("token").value = savedToken();
$("token").addEventListener("change", () => {
  localStorage.setItem("sluice-api-token", $("token").value.trim());
  bucks.setToken(savedToken());
  loadCrawls();
});
// Click a value (status, site, mime, crawler) to filter on it; anywhere else on a row to
// see the whole line.
$("rows").addEventListener("click", (ev) => {
  const row = ev.target.closest(".row");
  if (!row || !row._ev) return;
  const cell = ev.target.closest("[data-filter]");
  if (cell && cell.textContent && !row._ev._gap) {
    const key = cell.dataset.filter;
    const f = { ...filter, [key]: cell.textContent };
    $(`f-${key}`).value = cell.textContent;
    applyFilter(f);
    return;
  }
  showDetail(row._ev);
});
$("rows").addEventListener("keydown", (ev) => {
  const row = ev.target.closest(".row");
  if (ev.key === "Enter" && row && row._ev) showDetail(row._ev);
  if (ev.key === "Escape") showDetail(null);
});
$("detail-close").addEventListener("click", () => showDetail(null));
$("live").addEventListener("click", () => setPaused(false));
window.addEventListener("resize", () => {
  list.measure();
  list.render(merger.rows);
});
list.setHighlight(highlighter(filter));
bucks.subscribe(filter);
showPause();
loadBucks().then((l) => bucks.setList(l));
setInterval(() => loadBucks().then((l) => bucks.setList(l)), 60_000);
setInterval(() => showStats(true), 1000);

// For tests and the curious: what the page holds, without scraping the DOM.
window.sluiceLive = {
  stats: () => ({
    lines: merger.rows.filter((r) => !r._gap).length,
    received,
    duplicates: merger.duplicates,
    paused,
    newWhilePaused,
    dropped: Object.fromEntries([...dropped].map(([b, d]) => [b, d.count])),
    bucks: bucks.states(),
    down: [...down.keys()],
  }),
  // Ids each buck sent (live and backfill), and the gap markers with their text.
  fromBuck: (b) => [...(perBuck.get(b) || [])],
  gaps: () => merger.rows.filter((r) => r._gap).map((r) => ({ buck: r._gap.buck, text: r._gap.text, caughtUp: r._gap.caughtUp, back: !!r._gap.back })),
  ids: () => merger.rows.filter((r) => !r._gap).map((r) => r.id),
  rows: () => merger.rows.filter((r) => !r._gap).map((r) => ({ id: r.id, line: r.line })),
  lines: () => merger.rows.filter((r) => !r._gap).map((r) => r.line),
  setPaused,
};
