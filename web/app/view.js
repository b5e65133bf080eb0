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

function makeRow() {
  const el = document.createElement("div");
  el.className = "row";
  for (const c of ["time", "crawl", "host", "status", "line"]) {
    const cell = document.createElement("span");
    cell.className = c;
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

function fill(el, ev, highlight) {
  const [time, crawl, host, status, line] = el.children;
  time.textContent = ev.time ? ev.time.slice(11, 23) : "";
  time.title = ev.time || "";
  crawl.textContent = ev.crawl;
  host.textContent = ev.host;
  const code = ev.fields && ev.fields.status !== undefined ? ev.fields.status.trim() : "";
  status.textContent = code;
  status.className = statusClass(code);
  el.classList.toggle("late", !!ev.late);
  line.title = ev.line;
  if (!highlight) {
    line.textContent = ev.line;
    return;
  }
  line.textContent = "";
  let at = 0;
  highlight.lastIndex = 0;
  for (const m of ev.line.matchAll(highlight)) {
    if (!m[0]) continue;
    if (m.index > at) line.appendChild(document.createTextNode(ev.line.slice(at, m.index)));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    line.appendChild(mark);
    at = m.index + m[0].length;
  }
  if (at < ev.line.length) line.appendChild(document.createTextNode(ev.line.slice(at)));
}
