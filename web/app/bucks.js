// Connections: one socket.io client per buck of the cluster, each retried on its own,
// each with a badge: green (subscribed), amber (connecting, or capped), red (down).

import { io } from "socket.io-client";

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;
const SUBSCRIBE_RETRY_MS = 3000;

export class Bucks {
  /**
   * handlers: onEvents(buckId, batch), onNotice(buckId, kind, payload),
   * onState(buckId, state, detail, downSince), onCatchUp(buckId, lines)
   */
  constructor(handlers, { token, backfill = 200 } = {}) {
    this.handlers = handlers;
    this.token = token;
    this.backfill = backfill;
    this.filter = {};
    this.conns = new Map();
  }

  /** Connects to every buck listed, and leaves any that is no longer listed. */
  setList(list) {
    const keep = new Set(list.map((b) => b.id));
    for (const [id, c] of this.conns) {
      if (!keep.has(id)) {
        c.close();
        this.conns.delete(id);
      }
    }
    for (const b of list) if (!this.conns.has(b.id)) this.conns.set(b.id, new Conn(this, b));
  }

  /**
   * Connects every buck again with `token` (the API token entered in the page): a buck
   * that refused the old one (or none) is asked again at once, not at its next retry.
   */
  setToken(token) {
    this.token = token || undefined;
    for (const c of this.conns.values()) c.reconnect();
  }

  /** Sends the filter to every buck (and to any that connects later). */
  subscribe(filter) {
    this.filter = filter;
    // A new filter starts a new stream: the catch-up point is for the old one.
    for (const c of this.conns.values()) {
      c.lastTime = null;
      c.subscribe();
    }
  }

  states() {
    return [...this.conns.values()].map((c) => ({
      id: c.id,
      state: c.state,
      detail: c.detail,
      downSince: c.downSince,
      lastTime: c.lastTime,
      caughtUp: c.caughtUp,
    }));
  }
}

class Conn {
  constructor(owner, { id, http_url }) {
    this.owner = owner;
    this.id = id;
    this.retries = 0;
    this.timer = null;
    // The newest event time seen from this buck: after a reconnect the buck is asked for
    // everything from there on, so lines of the outage arrive (deduplicated by id).
    this.lastTime = null;
    this.downSince = null;
    this.catchingUp = false;
    this.caughtUp = 0;
    // A buck behind a path prefix serves socket.io under that prefix.
    const url = new URL(http_url, location.href);
    const path = url.pathname.replace(/\/+$/, "") + "/socket.io/";
    this.socket = io(url.origin, {
      path,
      transports: ["websocket", "polling"],
      reconnectionDelay: RETRY_MIN_MS,
      reconnectionDelayMax: RETRY_MAX_MS,
      // Read at every (re)connect, so a token entered later is the one sent.
      auth: (cb) => cb(owner.token ? { token: owner.token } : {}),
    });
    this.setState("amber", "connecting");
    const s = this.socket;
    s.on("connect", () => {
      this.retries = 0;
      this.setState("amber", "connected, subscribing");
      this.subscribe();
    });
    s.on("hello", (h) => (this.hello = h));
    s.on("subscribed", () => {
      clearTimeout(this.subTimer);
      this.setState("green", "live");
    });
    s.on("events", (batch) => {
      for (const e of batch.events) if (!this.lastTime || e.time > this.lastTime) this.lastTime = e.time;
      if (batch.backfill && this.catchingUp) {
        this.caughtUp += batch.events.length;
        owner.handlers.onCatchUp?.(this.id, this.caughtUp);
      }
      owner.handlers.onEvents(this.id, batch);
    });
    s.on("dropped", (d) => owner.handlers.onNotice(this.id, "dropped", d));
    s.on("capped", (c) => {
      owner.handlers.onNotice(this.id, "capped", c);
      this.setState("amber", c.message || c.cap);
    });
    s.on("error", (e) => {
      // The buck answered (it refused the filter): nothing to re-send.
      clearTimeout(this.subTimer);
      owner.handlers.onNotice(this.id, "error", e);
    });
    s.on("connect_error", (e) => {
      this.setState("red", `down: ${e.message}`);
      // Refused by the buck itself (token): socket.io-client gives up, so retry here.
      if (!s.active) this.retryLater();
    });
    s.on("disconnect", (reason) => {
      this.setState("red", `down: ${reason}`);
      if (!s.active) this.retryLater();
    });
  }

  reconnect() {
    clearTimeout(this.timer);
    this.retries = 0;
    this.socket.disconnect();
    this.socket.connect();
  }

  retryLater() {
    clearTimeout(this.timer);
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.retries++);
    this.timer = setTimeout(() => this.socket.connect(), delay);
  }

  subscribe() {
    clearTimeout(this.subTimer);
    if (!this.socket.connected) return;
    this.setState("amber", "subscribing");
    const payload = { ...this.owner.filter, backfill: this.owner.backfill };
    this.catchingUp = !!this.lastTime;
    if (this.lastTime) payload.after = this.lastTime;
    this.socket.emit("subscribe", payload);
    // A subscribe that crossed the buck's connect handling can go unanswered: ask again.
    this.subTimer = setTimeout(() => this.state !== "green" && this.subscribe(), SUBSCRIBE_RETRY_MS);
  }

  setState(state, detail) {
    if (state === "red" && this.state !== "red") {
      this.downSince = new Date();
      this.caughtUp = 0;
    }
    if (state === "green") this.downSince = null;
    this.state = state;
    this.detail = detail;
    this.owner.handlers.onState(this.id, state, detail, this.downSince);
  }

  close() {
    clearTimeout(this.timer);
    clearTimeout(this.subTimer);
    this.socket.close();
  }
}
