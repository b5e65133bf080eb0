// The live view: loads the cluster's bucks, connects to all of them, merges what they
// send into one de-duplicated, time-ordered, bounded stream and shows it in a virtual
// list that follows the tail until the user pauses or scrolls up.

import { Bucks } from "./bucks.js";
import { FILTER_KEYS, filterFromSearch, filterToUrl, highlighter } from "./filter.js";
import { Merger, eventMillis } from "./merge.js";
import { ROW_H, VirtualList } from "./view.js";

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
  for (const e of batch.events) {
    e._t = eventMillis(e);
    e._buck = buck;
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

function onState(buck, state, detail) {
  let el = document.querySelector(`.badge[data-buck="${CSS.escape(buck)}"]`);
  if (!el) {
    el = document.createElement("span");
    el.className = "badge";
    el.dataset.buck = buck;
    $("bucks").appendChild(el);
  }
  el.dataset.state = state;
  el.textContent = buck;
  el.title = detail;
}

// The token is the one the SQL console keeps in this browser: never in a URL, where
// proxies, history and Referer headers would keep it.
const bucks = new Bucks({ onEvents, onNotice, onState }, { token: localStorage.getItem("sluice-api-token") || undefined });

function applyFilter(f) {
  filter = f;
  filterToUrl(filter);
  $("error").hidden = true;
  merger.clear();
  pending = [];
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
    lines: merger.rows.length,
    received,
    duplicates: merger.duplicates,
    paused,
    newWhilePaused,
    dropped: Object.fromEntries([...dropped].map(([b, d]) => [b, d.count])),
    bucks: bucks.states(),
  }),
  ids: () => merger.rows.map((r) => r.id),
  lines: () => merger.rows.map((r) => r.line),
  setPaused,
};
