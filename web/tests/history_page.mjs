// The history page in Debian's chromium (playwright-core) against a running `sluice up`:
// request a crawl's range, wait for the progress to reach ready, search, count the rows.
// Prints JSON lines; the last is {"done": true, shown, page_size} or {"fail": "..."}.
//
// usage: node history_page.mjs BASE_URL CRAWL START END TERM SCREENSHOT_PATH
import { chromium } from "playwright-core";

const [base, crawl, start, end, term, screenshot] = process.argv.slice(2);
const PAGE_SIZE = 200;
let browser;
let page;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on("pageerror", (e) => process.stdout.write(JSON.stringify({ page_error: e.message }) + "\n"));
  await page.goto(`${base}/ui/history`);
  await page.fill("#crawl", crawl);
  await page.fill("#start", start);
  await page.fill("#end", end);
  await page.click("#request");
  await page.waitForFunction(() => !document.querySelector("#search-box").hidden, null, { timeout: 30000 });
  await page.waitForFunction(() => /ready/.test(document.querySelector("#state").textContent), null, { timeout: 30000 });
  await page.fill("#q", term);
  await page.selectOption("#mode", "term");
  await page.click("#search");
  // The page may have run a search of its own when the index became ready: wait for the
  // rows of this one (every expected match contains the term).
  await page.waitForFunction((t) => {
    const rows = [...document.querySelectorAll("#results tbody tr")].filter((r) => !r.className);
    return /lines shown/.test(document.querySelector("#stats").textContent) && rows.length > 0 &&
      rows.every((r) => r.textContent.toLowerCase().includes(t.toLowerCase()));
  }, term, { timeout: 10000 });
  const shown = await page.$$eval("#results tbody tr", (rows) => rows.filter((r) => !r.className).length);
  const bad = await page.$$eval("#results tbody tr", (rows, t) =>
    rows.filter((r) => !r.textContent.toLowerCase().includes(t.toLowerCase())).length, term);
  if (bad) throw new Error(`${bad} result rows do not contain ${term}`);
  const bars = await page.$$eval("#histogram *", (b) => b.length);
  const barRects = await page.$$eval("#histogram rect.bar", (b) => b.length);
  const axisLabels = await page.$$eval("#histogram text", (t) => t.map((x) => x.textContent));
  const header = await page.$$eval("#results thead th", (th) => th.map((x) => x.textContent));
  const firstTime = await page.textContent("#results tbody tr td.time");
  const marks = await page.$$eval("#results tbody tr:not([class]) mark", (m) => m.slice(0, 5).map((x) => x.textContent));
  await page.screenshot({ path: screenshot, fullPage: false });

  // Site and status filters: only the term's 404 lines.
  await page.fill("#site", term);
  await page.fill("#status-filter", "404");
  await page.click("#search");
  // The old rows are cleared when the search starts and the old stats stay until it
  // answers: wait for rows of this search (the fixture has 404 lines of the term).
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#results tbody tr")].filter((r) => !r.className);
    return /lines shown/.test(document.querySelector("#stats").textContent) && rows.length > 0 &&
      rows.every((r) => r.cells[3].textContent.split(/\s+/)[1] === "404") &&
      !/^200 matches/.test(document.querySelector("#hist-label").textContent);
  }, null, { timeout: 10000 });
  const filtered = await page.$$eval("#results tbody tr", (rows) => rows.filter((r) => !r.className).map((r) => r.cells[3].textContent.split(/\s+/)[1]));
  const filteredTotal = await page.textContent("#hist-label");
  await page.fill("#site", "");
  await page.fill("#status-filter", "");

  // A bad date is caught before it is sent, with the form to use.
  await page.fill("#start", "yesterday");
  await page.click("#request");
  const badDate = await page.textContent("#request-error");
  // A crawl with no segments says so instead of a bare "ready: 0 events".
  await page.fill("#crawl", "no-such-crawl");
  await page.fill("#start", start);
  await page.click("#request");
  await page.waitForFunction(() => document.querySelector("#name").textContent.includes("no-such-crawl") &&
    /ready|failed/.test(document.querySelector("#state").textContent), null, { timeout: 30000 });
  const unknownCrawl = await page.textContent("#state");
  // Delete the request shown: it leaves the list.
  const listed = () => [...document.querySelectorAll("#requests tbody tr")].filter((r) => r.textContent.includes("no-such-crawl")).length;
  await page.waitForFunction(listed, null, { timeout: 10000 });
  const before = await page.$$eval("#requests tbody tr", (r) => r.length);
  await page.click("#delete");
  await page.waitForFunction(() => ![...document.querySelectorAll("#requests tbody tr")].some((r) => r.textContent.includes("no-such-crawl")), null, { timeout: 10000 });
  const after = await page.$$eval("#requests tbody tr", (r) => r.length);
  process.stdout.write(JSON.stringify({ done: true, shown, page_size: PAGE_SIZE, histogram_elements: bars, barRects, axisLabels, header, firstTime, marks, badDate, unknownCrawl, requestsBefore: before, requestsAfter: after, filtered, filteredTotal }) + "\n", () => process.exit(0));
} catch (e) {
  if (page) await page.screenshot({ path: screenshot.replace(/\.png$/, "-failed.png") }).catch(() => {});
  process.stdout.write(JSON.stringify({ fail: String((e && e.stack) || e) }) + "\n", () => process.exit(1));
} finally {
  if (browser) await browser.close().catch(() => {});
}
