// An accessibility check (axe-core, WCAG 2 A and AA rules) of each page in Debian's
// chromium against a running `sluice up`. Prints JSON lines: one per page
// {"page", "violations": [{id, impact, help, nodes}]}, then {"done": true} or {"fail"}.
//
// usage: node a11y.mjs BASE_URL CRAWL PAGE...   (PAGE like "ui/sql" or "ui/crawls?crawl=x")
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const [base, crawl, ...pages] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const axeSource = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");
let browser;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, bypassCSP: true });
  for (const path of pages) {
    const page = await context.newPage();
    await page.goto(`${base}/${path.replace("{crawl}", encodeURIComponent(crawl))}`, { waitUntil: "networkidle" });
    await page.addScriptTag({ content: axeSource });
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
    });
    process.stdout.write(JSON.stringify({ page: path, violations: result }) + "\n");
    await page.close();
  }
  process.stdout.write(JSON.stringify({ done: true }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ fail: String(e) }) + "\n");
} finally {
  if (browser) await browser.close();
}
