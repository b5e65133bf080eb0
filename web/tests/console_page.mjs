// The SQL console in Debian's chromium (playwright-core) against a running `sluice up`:
// opened from a link that carries SQL, it fills the form but runs nothing until Run is
// clicked. Reports the page's Content-Security-Policy violations too.
// Prints JSON lines; the last is {"done": true, before, after, rows} or {"fail": "..."}.
//
// usage: node console_page.mjs BASE_URL CRAWL
import { chromium } from "playwright-core";

const [base, crawl] = process.argv.slice(2);
const queries = async () => {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("sluice_buck_sql_queries_total "));
  return Number(line ? line.split(" ")[1] : NaN);
};
let browser;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await (await browser.newContext()).newPage();
  const violations = [];
  page.on("console", (m) => { if (/Content Security Policy/.test(m.text())) violations.push(m.text()); });
  page.on("pageerror", (e) => process.stdout.write(JSON.stringify({ page_error: e.message }) + "\n"));
  const sql = "SELECT count(*) AS n FROM events";
  const before = await queries();
  await page.goto(`${base}/ui/sql?crawl=${encodeURIComponent(crawl)}&sql=${encodeURIComponent(sql)}`,
    { waitUntil: "networkidle" });
  const filled = await page.inputValue("#sql");
  const afterLoad = await queries();
  await page.click("#run");
  await page.waitForFunction(() => document.querySelector("#out").textContent.trim().length > 0, null, { timeout: 15000 });
  const after = await queries();
  const out = await page.textContent("#out");
  process.stdout.write(JSON.stringify({ done: true, before, afterLoad, after, filled, out, violations }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ fail: String(e) }) + "\n");
} finally {
  if (browser) await browser.close();
}
