// N socket.io clients in one Node process, for live/benches/fanout.rs. Each subscribes
// with the same filter; the process counts what they receive and the latency from the
// event's time (stamped at publish) to its arrival.
// stdout: {"ready": N} once all are subscribed, then {"done": true, ...} once the
// total received reaches the count written on stdin ("expect X"), or on "report".
//
// usage: node bench_clients.mjs URL N FILTER_JSON
import { io } from "socket.io-client";
import readline from "node:readline";

const [url, nStr, filterJson] = process.argv.slice(2);
const n = Number(nStr);
const filter = JSON.parse(filterJson || "{}");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
// "2026-11-21T20:19:33.474123Z" -> microseconds since the epoch.
const timeUs = (t) => Date.parse(t.slice(0, 23) + "Z") * 1000 + Number(t.slice(23, 26) || 0);

let subscribed = 0;
let total = 0;
let expect = Infinity;
const dropped = {};
const lat = [];
let first = 0;
let last = 0;

for (let i = 0; i < n; i++) {
  const s = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  s.on("connect", () => s.emit("subscribe", filter));
  s.on("subscribed", () => {
    if (++subscribed === n) out({ ready: n });
  });
  s.on("events", (b) => {
    const now = nowUs();
    if (!first) first = now;
    last = now;
    total += b.events.length;
    // Latency from the first client only: the others would measure the same path.
    if (i === 0) for (const e of b.events) lat.push((now - timeUs(e.time)) / 1000);
    if (total >= expect) report();
  });
  s.on("dropped", (d) => (dropped[d.reason] = (dropped[d.reason] || 0) + d.count));
  s.on("connect_error", (e) => out({ connect_error: e.message }));
}

function report() {
  lat.sort((a, b) => a - b);
  const q = (x) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] : null);
  const line = JSON.stringify({ done: true, received: total, dropped, span_ms: (last - first) / 1000, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1) });
  process.stdout.write(line + "\n", () => process.exit(0));
}

readline.createInterface({ input: process.stdin }).on("line", (l) => {
  const m = /^expect (\d+)$/.exec(l.trim());
  if (m) {
    expect = Number(m[1]);
    if (total >= expect) report();
  } else if (l.trim() === "report") report();
});
