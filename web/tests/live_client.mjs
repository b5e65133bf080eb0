// One socket.io client of the live broker, driven by live/tests/node_clients.rs with the
// official npm socket.io-client. It reports on stdout, one JSON object a line:
//   {"hello": {...}}, {"ready": true, "subscribed": {...}}, {"error": {...}},
//   {"capped": {...}}, {"connect_error": "..."}, {"disconnect": "reason"}, and at the end
//   {"done": true, "live": [ids], "backfill": [ids], "late": [ids], "dropped": {reason: n}}.
// It ends when it has accounted for the count written on stdin ("expect N": events
// received live plus dropped), on "finish", or when the socket closes.
//
// usage: node live_client.mjs URL '{"token": "...", "subscribe": {...}, "bad_subscribe": {...}}'
import { io } from "socket.io-client";
import readline from "node:readline";

const [url, optsJson] = process.argv.slice(2);
const opts = JSON.parse(optsJson || "{}");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const live = [];
const backfill = [];
const late = [];
const dropped = {};
let expect = null;
let finished = false;

const socket = io(url, {
  transports: ["websocket"],
  reconnection: false,
  auth: opts.token === undefined ? {} : { token: opts.token },
});

function finish() {
  if (finished) return;
  finished = true;
  socket.close();
  // stdout is a pipe: exit only once the last line is written, or it is cut short.
  process.stdout.write(JSON.stringify({ done: true, live, backfill, late, dropped }) + "\n", () => process.exit(0));
}

function accounted() {
  const d = Object.values(dropped).reduce((a, b) => a + b, 0);
  return live.length + d;
}

function check() {
  if (expect !== null && accounted() >= expect) finish();
}

socket.on("hello", (h) => out({ hello: h }));
socket.on("connect", () => {
  if (opts.bad_subscribe) socket.emit("subscribe", opts.bad_subscribe);
  else if (opts.subscribe !== undefined) socket.emit("subscribe", opts.subscribe);
});
socket.on("error", (e) => {
  out({ error: e });
  // A refused filter first, then the real one: the broker must accept the second.
  if (opts.bad_subscribe && opts.subscribe !== undefined) {
    opts.bad_subscribe = undefined;
    socket.emit("subscribe", opts.subscribe);
  }
});
socket.on("subscribed", (s) => out({ ready: true, subscribed: s }));
socket.on("events", (batch) => {
  for (const e of batch.events) {
    (batch.backfill ? backfill : live).push(e.id);
    if (e.late) late.push(e.id);
  }
  check();
});
socket.on("dropped", (d) => {
  out({ dropped_notice: d });
  dropped[d.reason] = (dropped[d.reason] || 0) + d.count;
  check();
});
socket.on("capped", (c) => out({ capped: c }));
socket.on("connect_error", (e) => {
  out({ connect_error: e.message });
  finish();
});
socket.on("disconnect", (reason) => {
  out({ disconnect: reason });
  finish();
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const m = /^expect (\d+)$/.exec(line.trim());
  if (m) {
    expect = Number(m[1]);
    check();
  } else if (line.trim() === "finish") {
    finish();
  }
});
