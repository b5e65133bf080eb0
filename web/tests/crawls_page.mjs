// The crawls page in Debian's chromium (playwright-core) against a running `sluice up`:
// lists the crawls, shows the chosen crawl's day as a chart and a table, and keeps a
// screenshot. Prints JSON lines; the last is {"done": true, ...} or {"fail": "..."}.
//
// usage: node crawls_page.mjs BASE_URL CRAWL DAY SCREENSHOT
import { chromium } from "playwright-core";

const [base, crawl, day, shot] = process.argv.slice(2);
let browser;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
  const violations = [];
  page.on("console", (m) => { if (/Content Security Policy/.test(m.text())) violations.push(m.text()); });
  page.on("pageerror", (e) => process.stdout.write(JSON.stringify({ page_error: e.message }) + "\n"));
  // The list first, then a click on the crawl's link, then the day picker.
  await page.goto(`${base}/ui/crawls`, { waitUntil: "networkidle" });
  await page.waitForSelector(`#crawls tr[data-crawl="${crawl}"]`, { timeout: 15000 });
  const listed = await page.textContent(`#crawls tr[data-crawl="${crawl}"] td.rows`);
  await page.waitForFunction(() => [...document.querySelectorAll(".home-state")].every((s) => s.textContent), null, { timeout: 10000 });
  const homeStates = await page.$$eval(".home-state", (s) => s.map((x) => x.textContent));
  await page.click(`#crawls tr[data-crawl="${crawl}"] a`);
  await page.waitForSelector("#steps tbody tr", { timeout: 15000 });
  await page.fill("#day", day);
  await page.dispatchEvent("#day", "change");
  // The day's table starts at its midnight; the last 24 hours shown before it (after the
  // click) start on the same date at a later hour, so the date alone is not enough.
  await page.waitForFunction((d) => {
    const first = document.querySelector("#steps tbody tr td");
    return first && first.textContent.startsWith(d + " 00:00") && document.querySelectorAll("#steps tbody tr").length === 24;
  }, day, { timeout: 15000 });
  const table = await page.$$eval("#steps tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  const num = (s) => Number(s.replace(/,/g, ""));
  const total = table.reduce((a, r) => a + num(r[1]), 0);
  const byClass = {};
  ["2xx", "3xx", "4xx", "5xx", "failed", "other"].forEach((name, i) => {
    byClass[name] = table.reduce((a, r) => a + num(r[2 + i]), 0);
  });
  const bars = await page.$$eval("#chart rect", (r) => r.length);
  const url = page.url();
  await page.screenshot({ path: shot, fullPage: true });
  process.stdout.write(JSON.stringify({ done: true, listed: num(listed), total, byClass, bars, url, violations, homeStates }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ fail: String(e) }) + "\n");
} finally {
  if (browser) await browser.close();
}
