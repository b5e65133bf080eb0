// The virtual list: a fixed pool of row elements, recycled over whichever lines are in
// view, so 10,000 buffered lines cost as much DOM as the 40 on screen.

export const ROW_H = 20;
const OVERSCAN = 10;

export class VirtualList {
  constructor(scroller, { onUserScroll }) {
    this.scroller = scroller;
    this.sizer = document.createElement("div");
    this.sizer.className = "sizer";
    scroller.appendChild(this.sizer);
    this.pool = [];
    this.rows = [];
    this.highlight = null;
    this.follow = true;
    // Where this code last put the scroll position: a scroll event that lands there is
    // ours, any other is the user's.
    this.setTop = -1;
    this.viewHeight = scroller.clientHeight;
    scroller.addEventListener("scroll", () => {
      if (Math.abs(scroller.scrollTop - this.setTop) < 1) return;
      onUserScroll(this.atBottom());
      this.render();
    });
  }

  /** Call when the window resizes: the one layout read render() cannot avoid. */
  measure() {
    this.viewHeight = this.scroller.clientHeight;
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollTop + this.viewHeight >= this.rows.length * ROW_H - ROW_H;
  }

  setHighlight(re) {
    this.highlight = re;
    for (const el of this.pool) el._ev = null;
  }

  /** Redraws every visible row (a row's object changed in place). */
  refresh() {
    for (const el of this.pool) if (el._ev) el._ev = null;
    this.render();
  }

  /** Moves the view by `dy` pixels without counting it as the user's scroll. */
  scrollBy(dy) {
    if (!dy) return;
    this.setTop = Math.max(0, this.scroller.scrollTop + dy);
    this.scroller.scrollTop = this.setTop;
  }

  /**
   * Shows `rows`; when following, at the tail. Writes only (sizes, scroll position,
   * rows) from values it already knows, so a frame costs one layout, not several.
   */
  render(rows = this.rows) {
    this.rows = rows;
    const height = rows.length * ROW_H;
    if (this.sizer._h !== height) {
      this.sizer.style.height = `${height}px`;
      this.sizer._h = height;
    }
    let top;
    if (this.follow) {
      top = Math.max(0, height - this.viewHeight);
      if (top !== this.setTop) {
        this.setTop = top;
        this.scroller.scrollTop = top;
      }
    } else {
      top = this.scroller.scrollTop;
    }
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const count = Math.ceil(this.viewHeight / ROW_H) + 2 * OVERSCAN;
    while (this.pool.length < count) {
      const el = makeRow();
      this.scroller.appendChild(el);
      this.pool.push(el);
    }
    for (let j = 0; j < this.pool.length; j++) {
      const el = this.pool[j];
      const idx = first + j;
      const ev = rows[idx];
      if (!ev || j >= count) {
        if (el._ev !== undefined) {
          el.style.display = "none";
          el._ev = undefined;
        }
        continue;
      }
      if (el._idx !== idx) {
        el.style.transform = `translateY(${idx * ROW_H}px)`;
        el._idx = idx;
      }
      if (el._ev !== ev) {
        if (el._ev === undefined) el.style.display = "";
        fill(el, ev, this.highlight);
        el._ev = ev;
      }
    }
  }
}

// Every row has every cell; CSS shows the crawl.log columns for crawl.log lines, and the
// line (with its parsed fields) for other formats.
const CELLS = ["time", "status", "size", "site", "url", "hop", "via", "mime", "line", "crawler", "crawl"];
// Cells whose value filters the view when clicked, and the filter key each sets.
export const CLICK_FILTER = { status: "status", site: "site", mime: "mime", crawler: "host" };

function makeRow() {
  const el = document.createElement("div");
  el.className = "row";
  el.tabIndex = 0;
  for (const c of CELLS) {
    const cell = document.createElement("span");
    cell.className = c;
    if (CLICK_FILTER[c]) cell.dataset.filter = CLICK_FILTER[c];
    el.appendChild(cell);
  }
  el._idx = -1;
  el._ev = null;
  return el;
}

function statusClass(code) {
  const n = Number.parseInt(code, 10);
  if (Number.isNaN(n)) return "status";
  if (n < 0) return "status sneg";
  return `status s${Math.min(5, Math.floor(n / 100))}`;
}

/** The website of a crawled URL: its host, lowercased (a `dns:` URL's name), as the bucks compute it. */
export function siteOf(url) {
  if (!url) return "";
  let rest = url.trim();
  const scheme = rest.indexOf("://");
  if (scheme >= 0) rest = rest.slice(scheme + 3);
  else if (/^dns:/i.test(rest)) rest = rest.slice(4);
  const auth = rest.split(/[/?#]/, 1)[0];
  const hostPort = auth.slice(auth.lastIndexOf("@") + 1);
  const host = hostPort.startsWith("[") ? hostPort.slice(0, hostPort.indexOf("]") + 1) : hostPort.split(":")[0];
  return host.toLowerCase();
}

const field = (ev, k) => (ev.fields && ev.fields[k] !== undefined ? String(ev.fields[k]).trim() : "");

/** Fills `el` with `text`, its matches of `highlight` in <mark>. */
export function highlightInto(el, text, highlight) {
  if (!highlight) {
    el.textContent = text;
    return;
  }
  el.textContent = "";
  let at = 0;
  highlight.lastIndex = 0;
  for (const m of text.matchAll(highlight)) {
    if (!m[0]) continue;
    if (m.index > at) el.appendChild(document.createTextNode(text.slice(at, m.index)));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    el.appendChild(mark);
    at = m.index + m[0].length;
  }
  if (at < text.length) el.appendChild(document.createTextNode(text.slice(at)));
}

function fill(el, ev, highlight) {
  const c = {};
  for (const cell of el.children) c[cell.className.split(" ")[0]] = cell;
  if (ev._gap) {
    el.className = "row gap";
    for (const k of CELLS) c[k].textContent = "";
    c.time.textContent = ev.time ? ev.time.slice(11, 23) : "";
    c.line.textContent = ev._gap.text;
    el.title = ev._gap.text;
    return;
  }
  // Columns when the parser found the URL; a crawl.log line it could not split keeps the line view.
  const crawlLog = ev.format === "crawl_log" && !!field(ev, "url");
  el.className = crawlLog ? "row cl" : "row other";
  el.classList.toggle("late", !!ev.late);
  el.title = "";
  c.time.textContent = ev.time ? ev.time.slice(11, 23) : "";
  c.time.title = ev.time || "";
  c.crawl.textContent = ev.crawl;
  c.crawler.textContent = ev.host;
  c.crawler.title = `crawler machine ${ev.host} (click to filter)`;
  const code = field(ev, "status");
  c.status.textContent = code;
  c.status.className = statusClass(code);
  if (crawlLog) {
    const url = field(ev, "url");
    if (ev._site === undefined) ev._site = siteOf(url);
    c.size.textContent = field(ev, "size");
    c.site.textContent = ev._site;
    c.site.title = ev._site ? `website ${ev._site} (click to filter)` : "";
    highlightInto(c.url, url, highlight);
    c.url.title = url;
    c.hop.textContent = field(ev, "hop_path");
    const via = field(ev, "via");
    c.via.textContent = via === "-" ? "" : via;
    c.via.title = via;
    c.mime.textContent = field(ev, "mimetype");
    c.mime.title = c.mime.textContent;
    c.line.textContent = "";
  } else {
    for (const k of ["size", "site", "url", "hop", "via", "mime"]) c[k].textContent = "";
    // Other formats: their parsed fields first, then the line.
    const parsed = Object.entries(ev.fields || {})
      .filter(([k]) => k !== "status")
      .map(([k, v]) => `${k}=${String(v).trim()}`)
      .join(" ");
    highlightInto(c.line, parsed ? `${parsed} · ${ev.line}` : ev.line, highlight);
    c.line.title = ev.line;
  }
}
