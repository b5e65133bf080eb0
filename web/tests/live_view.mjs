// The live view in Debian's chromium (playwright-core), against two live-demo bucks that
// publish the same event ids. Run by live/tests/browser.rs, which starts the bucks.
// Prints one JSON object a line: {"step": ...} as it goes, then {"done": true, ...figures}
// or {"fail": "what went wrong"} (and exits 1).
//
// usage: node live_view.mjs URL_A URL_B PID_B SCREENSHOT_PATH
import { chromium } from "playwright-core";

const [urlA, urlB, pidB, screenshot] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const TAILER = "51000000000000ce";
const id = (off) => `${TAILER}-1-${off}`;
// The generator's rules (live/src/synthetic.rs), to know what a filter must let through.
const crawlOf = (off) => (off % 3 === 0 ? "crawl-a" : "crawl-b");
const statusOf = (off) => [200, 404, 503, -5002, 301, 410][off % 6];
const offsetOf = (eid) => Number(eid.split("-")[2]);

async function publish(url, from, count, rate = 0) {
  const r = await fetch(`${url}/demo/publish?from=${from}&count=${count}&rate=${rate}`, { method: "POST" });
  if (r.status !== 202) throw new Error(`${url}/demo/publish answered ${r.status}`);
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

const figures = {};
let browser;
let page;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on("pageerror", (e) => out({ page_error: e.message }));
  page.on("console", (m) => m.type() === "error" && out({ console_error: m.text() }));

  const bothGreen = () =>
    page.waitForFunction(
      () => window.sluiceLive && sluiceLive.stats().bucks.filter((b) => b.state === "green").length === 2,
      null,
      { timeout: 15000 },
    );

  // 1. Connects to both bucks listed by /api/bucks.
  await page.goto(`${urlA}/ui/live`);
  await bothGreen();
  out({ step: "both bucks green" });

  // 2. Lines published by both bucks appear once each, within a second.
  const base1 = 1000;
  const t0 = Date.now();
  await Promise.all([publish(urlA, base1, 50), publish(urlB, base1, 50)]);
  await page.waitForFunction(
    ([from, n, t]) => {
      const ids = new Set(sluiceLive.ids());
      for (let o = from; o < from + n; o++) if (!ids.has(`${t}-1-${o}`)) return false;
      return true;
    },
    [base1, 50, TAILER],
    { timeout: 1000 },
  );
  figures.visible_ms = Date.now() - t0;
  const ids1 = await page.evaluate(() => sluiceLive.ids());
  for (let o = base1; o < base1 + 50; o++) {
    const n = ids1.filter((x) => x === id(o)).length;
    check(n === 1, `${id(o)} shown ${n} times, expected once`);
  }
  // Both bucks sent every line: the page merged 50 duplicates (more may still arrive).
  await page.waitForFunction(() => sluiceLive.stats().duplicates >= 50, null, { timeout: 3000 });
  out({ step: "published lines shown once each", visible_ms: figures.visible_ms });

  // 3. The filter: crawl-b, 4xx, text "line-20"; applied by both bucks, shown in the URL.
  await page.fill("#f-crawl", "crawl-b");
  await page.fill("#f-status", "4xx");
  await page.fill("#f-text", "line-20");
  await page.press("#f-text", "Enter");
  await page.waitForFunction(() => location.search.includes("status=4xx"), null, { timeout: 2000 });
  await bothGreen();
  const base2 = 2000;
  await Promise.all([publish(urlA, base2, 60), publish(urlB, base2, 60)]);
  const want2 = [];
  for (let o = base2; o < base2 + 60; o++) {
    if (crawlOf(o) === "crawl-b" && statusOf(o) >= 400 && statusOf(o) < 500) want2.push(id(o));
  }
  await page.waitForFunction((want) => {
    const ids = new Set(sluiceLive.ids());
    return want.every((w) => ids.has(w));
  }, want2, { timeout: 3000 });
  const ids2 = await page.evaluate(() => sluiceLive.ids());
  for (const x of ids2) {
    const o = offsetOf(x);
    check(crawlOf(o) === "crawl-b" && statusOf(o) >= 400 && statusOf(o) < 500 && `line-${o}`.includes("line-20"),
      `filtered view shows ${x}, which the filter excludes`);
  }
  const marks = await page.$$eval("#rows mark", (ms) => ms.map((m) => m.textContent.toLowerCase()));
  check(marks.length > 0 && marks.every((m) => m === "line-20"), `highlights: ${JSON.stringify(marks.slice(0, 5))}`);
  const statusColours = await page.$$eval("#rows .row .status", (s) => s.map((x) => x.className));
  check(statusColours.some((c) => c.includes("s4")), "4xx statuses are coloured");
  // The filtered view is shareable: the same URL opens with the same filter.
  const shared = await context.newPage();
  await shared.goto(page.url());
  check((await shared.inputValue("#f-crawl")) === "crawl-b" && (await shared.inputValue("#f-status")) === "4xx",
    "a shared URL restores the filter");
  await shared.close();
  out({ step: "filter", shown: ids2.length, expected_new: want2.length });

  // 4. Pause keeps receiving and counts what is new.
  await page.goto(`${urlA}/ui/live`);
  await bothGreen();
  await page.click("#pause");
  const base3 = 3000;
  await Promise.all([publish(urlA, base3, 30), publish(urlB, base3, 30)]);
  await page.waitForFunction(() => document.querySelector("#new").textContent === "30 new", null, { timeout: 3000 });
  check(await page.isVisible("#live"), "the back-to-live button shows while paused");
  await page.click("#live");
  check(!(await page.evaluate(() => sluiceLive.stats().paused)), "back to live resumes");
  // Scrolling up pauses.
  await Promise.all([publish(urlA, 3100, 100), publish(urlB, 3100, 100)]);
  await page.waitForFunction(() => sluiceLive.stats().lines >= 100, null, { timeout: 3000 });
  await page.mouse.move(600, 400);
  await page.mouse.wheel(0, -600);
  await page.waitForFunction(() => sluiceLive.stats().paused, null, { timeout: 2000 });
  await page.click("#live");
  out({ step: "pause, N new, scroll pauses, back to live" });

  // 5. Smoothness at 2,000 events/s for 10 s (both bucks send each: 4,000 arrive/s).
  const RATE = 2000;
  const SECS = 10;
  const base4 = 100000;
  await page.evaluate(() => {
    window.__perf = { frames: [], long: [], last: performance.now(), run: true };
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__perf.long.push(e.duration);
    }).observe({ type: "longtask" });
    const tick = (t) => {
      const p = window.__perf;
      if (!p.run) return;
      p.frames.push(t - p.last);
      p.last = t;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const before = await page.evaluate(() => sluiceLive.stats().received);
  await Promise.all([publish(urlA, base4, RATE * SECS, RATE), publish(urlB, base4, RATE * SECS, RATE)]);
  const tp = Date.now();
  await page.waitForFunction(([n, from]) => sluiceLive.stats().received >= from + n, [2 * RATE * SECS, before], {
    timeout: (SECS + 10) * 1000,
    polling: 250,
  });
  const elapsed = (Date.now() - tp) / 1000;
  const perf = await page.evaluate(() => {
    const p = window.__perf;
    p.run = false;
    const f = p.frames.slice(1).sort((a, b) => a - b);
    const q = (x) => f[Math.min(f.length - 1, Math.floor(x * f.length))];
    return {
      frames: f.length,
      frame_p50_ms: q(0.5),
      frame_p95_ms: q(0.95),
      frame_p99_ms: q(0.99),
      frame_max_ms: f[f.length - 1],
      long_tasks: p.long.length,
      long_task_ms: p.long.reduce((a, b) => a + b, 0),
    };
  });
  const st = await page.evaluate(() => sluiceLive.stats());
  Object.assign(figures, perf, {
    rate_per_buck: RATE,
    seconds: elapsed,
    fps: perf.frames / elapsed,
    lines_in_buffer: st.lines,
    dropped_notices: st.dropped,
  });
  check(st.lines <= 10000, `buffer bounded: ${st.lines} lines`);
  check(Object.keys(st.dropped).length === 0, `no drops at 2,000/s: ${JSON.stringify(st.dropped)}`);
  out({ step: "2,000 events/s", ...perf, fps: figures.fps });
  await page.screenshot({ path: screenshot });

  // 6. One buck killed: its badge turns red, the other's events keep coming.
  process.kill(Number(pidB), "SIGKILL");
  await page.waitForFunction(
    () => sluiceLive.stats().bucks.some((b) => b.state === "red") && sluiceLive.stats().bucks.some((b) => b.state === "green"),
    null,
    { timeout: 10000 },
  );
  const base5 = 5000;
  await publish(urlA, base5, 20);
  await page.waitForFunction((want) => {
    const ids = new Set(sluiceLive.ids());
    return want.every((w) => ids.has(w));
  }, Array.from({ length: 20 }, (_, i) => id(base5 + i)), { timeout: 2000 });
  const badges = await page.$$eval(".badge", (bs) => bs.map((b) => [b.textContent, b.dataset.state]));
  out({ step: "one buck killed", badges });

  // 7. A burst larger than the page's queue on the buck: the page says how many it lost,
  // and what it shows plus what it was told it lost is the whole burst.
  const base6 = 6000;
  const burst = 5000;
  await publish(urlA, base6, burst);
  await page.waitForFunction(
    ([from, n]) => {
      const ids = sluiceLive.ids().filter((x) => {
        const o = Number(x.split("-")[2]);
        return o >= from && o < from + n;
      });
      return ids.length + (sluiceLive.stats().dropped["buck-a"] || 0) === n;
    },
    [base6, burst],
    { timeout: 5000 },
  );
  const notice = await page.textContent("#dropped");
  check(/buck-a: [\d,]+ dropped \(this browser fell behind\)/.test(notice), `dropped notice: ${notice}`);
  figures.burst_dropped = (await page.evaluate(() => sluiceLive.stats().dropped["buck-a"])) || 0;
  out({ step: "dropped notice", notice });
  await page.screenshot({ path: screenshot });
  out({ done: true, ...figures, badges });
  await browser.close();
} catch (e) {
  if (page) await page.screenshot({ path: screenshot }).catch(() => {});
  out({ fail: e.message.split("\n")[0] });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
