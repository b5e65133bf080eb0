// The live view's keys and layout in Debian's chromium against a running `sluice up`:
// at 900 px wide the header takes at most two rows; `/` focuses the text filter; Esc in
// a filter box clears the filter (boxes and URL); the crawl box suggests the buck's
// crawls. Prints one JSON line: {"done": true, ...} or {"fail": "..."}.
//
// usage: node live_keys.mjs BASE_URL CRAWL
import { chromium } from "playwright-core";

const [base, crawl] = process.argv.slice(2);
let browser;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await (await browser.newContext({ viewport: { width: 900, height: 700 } })).newPage();
  await page.goto(`${base}/ui/live?status=4xx&crawl=${encodeURIComponent(crawl)}`, { waitUntil: "networkidle" });
  await page.waitForFunction(() => document.querySelectorAll("#crawl-list option").length > 0, null, { timeout: 10000 });
  const suggested = await page.$$eval("#crawl-list option", (o) => o.map((x) => x.value));
  // Rows of the header: distinct top offsets of its direct children that are shown.
  const headerRows = await page.$eval("header", (h) => {
    const row = document.getElementById("pause").getBoundingClientRect().height;
    const tops = new Set();
    for (const el of h.querySelectorAll("input, select, button, a")) {
      const r = el.getBoundingClientRect();
      if (r.width && r.height) tops.add(Math.round(r.top / 8));
    }
    return { height: h.getBoundingClientRect().height, controlHeight: row, rows: Math.round((h.getBoundingClientRect().height - 12) / (row + 6)) };
  });
  await page.click("#rows", { position: { x: 5, y: 5 } }).catch(() => {});
  await page.keyboard.press("/");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  await page.focus("#f-crawl");
  const before = { status: await page.inputValue("#f-status"), url: page.url() };
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => !location.search.includes("status"), null, { timeout: 5000 });
  const after = { status: await page.inputValue("#f-status"), crawl: await page.inputValue("#f-crawl"), url: page.url() };
  process.stdout.write(JSON.stringify({ done: true, suggested, headerRows, focused, before, after }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ fail: String(e) }) + "\n");
} finally {
  if (browser) await browser.close();
}
