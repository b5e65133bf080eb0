// A socket.io client for the pipeline_latency benchmark: subscribes to one buck's live
// stream and measures, per live event, the time from its write (the `wt:<unix µs>`
// annotation the benchmark's writer puts in each line) to its arrival here.
//
// usage: node live_latency.mjs WEB_DIR URL FILTER_JSON
// WEB_DIR is the repository's web/ directory, where `npm ci` installed socket.io-client.
// Prints {"ready": true} once subscribed; on "finish" on stdin prints
// {"n", "p50_ms", "p99_ms", "max_ms", "dropped": {reason: count}} and exits.
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const [webDir, url, filterJson] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(webDir), "package.json"));
const { io } = require("socket.io-client");

const latencies = [];
const dropped = {};
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;
const out = (o, done) => process.stdout.write(JSON.stringify(o) + "\n", done);

const socket = io(url, { transports: ["websocket"], reconnection: false });
socket.on("connect", () => socket.emit("subscribe", JSON.parse(filterJson || "{}")));
socket.on("subscribed", () => out({ ready: true }));
socket.on("events", (batch) => {
  if (batch.backfill) return;
  const t = nowUs();
  for (const e of batch.events) {
    const m = /wt:(\d+)/.exec(e.line);
    if (m) latencies.push((t - Number(m[1])) / 1000);
  }
});
socket.on("dropped", (d) => {
  dropped[d.reason] = (dropped[d.reason] || 0) + d.count;
});
socket.on("connect_error", (e) => out({ connect_error: e.message }));

function finish() {
  socket.close();
  latencies.sort((a, b) => a - b);
  const q = (p) =>
    latencies.length ? latencies[Math.min(latencies.length - 1, Math.round(p * (latencies.length - 1)))] : null;
  out({ n: latencies.length, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1), dropped }, () => process.exit(0));
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "finish") finish();
});
