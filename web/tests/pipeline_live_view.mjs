// The live view in Debian's chromium (playwright-core) against the real pipeline:
// `sluice up` (buck "local") plus a second buck process, both homes of the crawl. This
// script appends crawl.log lines to the tailed file itself, so "within 1 s" is measured
// from the write to the line showing in the page.
// Prints one JSON object a line: {"step": ...}, then {"done": true, ...figures} or
// {"fail": "..."} (and exits 1).
//
// usage: node pipeline_live_view.mjs UP_URL LOG_FILE CRAWL PID_OTHER_BUCK SCREENSHOT_PATH
import { appendFileSync } from "node:fs";
import { check, openLiveView, out, runInPage } from "./live_page.mjs";

const [upUrl, logFile, crawl, pidOther, screenshot] = process.argv.slice(2);

let seq = 0;
// Appends n lines with unique URLs; statuses cycle 200, 404, 301. Returns their URLs.
function writeLines(n, status) {
  const urls = [];
  let text = "";
  for (let i = 0; i < n; i++) {
    seq++;
    const st = status ?? [200, 404, 301][seq % 3];
    const url = `http://live.example.com/p/${seq}`;
    urls.push({ url, status: st });
    text += `${new Date().toISOString()} ${String(st).padStart(5)} ${String(1000 + seq).padStart(10)} ${url} L http://live.example.com/ text/html #001 - sha1:LIVE - -\n`;
  }
  appendFileSync(logFile, text);
  return urls;
}

// The page's buffer (not the DOM: the list is virtualised, only visible rows exist).
const shownUrls = (page) => page.evaluate(() => sluiceLive.lines());

await runInPage({ width: 1280, height: 800 }, screenshot.replace(/\.png$/, "-failed.png"), async (page, figures) => {
  await openLiveView(page, upUrl, crawl);

  // 1. Lines appended to the file appear once each within 1 s.
  const t0 = Date.now();
  const batch1 = writeLines(30);
  await page.waitForFunction((n) => sluiceLive.stats().lines >= n, batch1.length, { timeout: 1000 });
  figures.write_to_visible_ms = Date.now() - t0;
  // Both homes publish every line: wait until the page has merged the second copies.
  await page.waitForFunction((n) => sluiceLive.stats().duplicates >= n, batch1.length, { timeout: 5000 });
  const ids1 = await page.evaluate(() => sluiceLive.ids());
  check(ids1.length === new Set(ids1).size, `an id shows twice: ${ids1.length} rows, ${new Set(ids1).size} ids`);
  const rows1 = await shownUrls(page);
  for (const { url } of batch1) {
    const n = rows1.filter((r) => r.includes(url + " ")).length;
    check(n === 1, `${url} shown ${n} times, expected once`);
  }
  out({ step: "appended lines shown once each", ms: figures.write_to_visible_ms });

  // 2. The filter (status 404), applied by the bucks.
  await page.fill("#f-status", "404");
  await page.press("#f-status", "Enter");
  await page.waitForFunction(() => location.search.includes("status=404"), null, { timeout: 2000 });
  await page.waitForFunction(
    () => sluiceLive.stats().bucks.filter((b) => b.state === "green").length === 2, null, { timeout: 10000 });
  const before = (await page.evaluate(() => sluiceLive.stats().received));
  const batch2 = writeLines(30);
  const want404 = batch2.filter((x) => x.status === 404).map((x) => x.url);
  await page.waitForFunction(
    (want) => { const t = sluiceLive.lines().join("\n"); return want.every((u) => t.includes(u + " ")); },
    want404, { timeout: 3000 });
  const rows2 = await shownUrls(page);
  for (const { url, status } of batch2) {
    const shown = rows2.some((r) => r.includes(url + " "));
    check(shown === (status === 404), `${url} (status ${status}) shown=${shown} under filter status=404`);
  }
  out({ step: "filter status=404", shown: want404.length, received_since: (await page.evaluate(() => sluiceLive.stats().received)) - before });

  // 3. Pause keeps receiving and shows "N new".
  await page.click("#pause");
  writeLines(12, 404);
  await page.waitForFunction(() => document.querySelector("#new").textContent === "12 new", null, { timeout: 3000 });
  await page.click("#live");
  out({ step: "pause shows 12 new" });
  await page.screenshot({ path: screenshot });

  // 4. The other buck killed: its badge turns red; the page keeps showing local's events.
  process.kill(Number(pidOther), "SIGKILL");
  await page.waitForFunction(
    () => { const b = sluiceLive.stats().bucks; return b.some((x) => x.state === "red") && b.some((x) => x.state === "green"); },
    null, { timeout: 15000 });
  const batch4 = writeLines(9, 404);
  await page.waitForFunction(
    (want) => { const t = sluiceLive.lines().join("\n"); return want.every((u) => t.includes(u + " ")); },
    batch4.map((x) => x.url), { timeout: 5000 });
  const badges = await page.$$eval(".badge", (bs) => bs.map((b) => [b.textContent, b.dataset.state]));
  out({ step: "killed buck red, lines keep coming", badges });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-buck-down.png") });
});
