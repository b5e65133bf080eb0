// The merged stream: events from every buck, each once (by id), ordered by event time
// among those that arrived within the last window, in a bounded buffer whose oldest
// lines go first.

export class Merger {
  constructor({ max = 10000, windowMs = 2000 } = {}) {
    this.max = max;
    this.windowMs = windowMs;
    this.rows = [];
    this.ids = new Set();
    this.added = 0;
    this.duplicates = 0;
    this.trimmed = 0;
  }

  clear() {
    this.rows = [];
    this.ids.clear();
  }

  /**
   * Adds events; returns {added, trimmed} where trimmed counts lines dropped from the
   * front, so a paused view can keep its place.
   */
  add(events, now = performance.now()) {
    let added = 0;
    events.sort((a, b) => a._t - b._t);
    const horizon = now - this.windowMs;
    for (const e of events) {
      if (this.ids.has(e.id)) {
        this.duplicates++;
        continue;
      }
      e._arrived = now;
      // Usually appended; a line older than some that arrived within the window (the
      // other buck was slower) is slotted into time order among them.
      let i = this.rows.length;
      while (i > 0 && this.rows[i - 1]._t > e._t && this.rows[i - 1]._arrived >= horizon) i--;
      if (i === this.rows.length) this.rows.push(e);
      else this.rows.splice(i, 0, e);
      this.ids.add(e.id);
      added++;
    }
    let trimmed = 0;
    if (this.rows.length > this.max) {
      trimmed = this.rows.length - this.max;
      for (const r of this.rows.splice(0, trimmed)) this.ids.delete(r.id);
    }
    this.added += added;
    this.trimmed += trimmed;
    return { added, trimmed };
  }
}

/** Milliseconds since the epoch of an event's RFC 3339 time, for ordering. */
export function eventMillis(e) {
  const t = Date.parse(e.time);
  return Number.isNaN(t) ? 0 : t;
}
