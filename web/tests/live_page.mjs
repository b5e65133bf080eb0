// What the live view's browser scripts (live_columns.mjs, pipeline_live_view.mjs,
// live_token.mjs) share: how they report, Chromium launched as the other browser tests
// launch it, the live view opened until both homes' badges are green, and how a script
// runs its steps and ends.
import { chromium } from "playwright-core";

// One JSON object a line on stdout: the Rust test reads them (tests/util.rs,
// `run_browser_script`).
export const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// Fails the script with `what` unless `cond` holds.
export const check = (cond, what) => {
  if (!cond) throw new Error(what);
};

// Run in the page: both bucks' badges are green.
export const bothBucksGreen = () =>
  window.sluiceLive && sluiceLive.stats().bucks.filter((b) => b.state === "green").length === 2;

// Debian's chromium, headless, with nothing in the background that could reach out.
export const launchChromium = () =>
  chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });

// A page of `viewport` size whose script errors are reported.
export async function newPage(browser, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (e) => out({ page_error: e.message }));
  return page;
}

// Opens the live view of `crawl` and waits for both bucks to be green.
export async function openLiveView(page, upUrl, crawl) {
  await page.goto(`${upUrl}/ui/live?crawl=${crawl}`);
  await page.waitForFunction(bothBucksGreen, null, { timeout: 20000 });
  out({ step: "both bucks green" });
}

// The script's last line, `{"done": true, ...figures}`, then exit 0 once it is written.
export const done = (figures) =>
  process.stdout.write(JSON.stringify({ done: true, ...figures }) + "\n", () => process.exit(0));

// The script's last line after error `e`, `{"fail": ...}`, a screenshot of `page` (if it
// was opened) at `shot`, then exit 1.
export async function failed(e, page, shot) {
  if (page) await page.screenshot({ path: shot }).catch(() => {});
  process.stdout.write(JSON.stringify({ fail: String((e && e.stack) || e) }) + "\n", () => process.exit(1));
}

// Runs a script's `steps(page, figures)` in a fresh Chromium page of `viewport`, then ends
// the script: `done(figures)`, or after an error `failed` with a screenshot at `failedShot`.
export async function runInPage(viewport, failedShot, steps) {
  let browser;
  let page;
  const figures = {};
  try {
    browser = await launchChromium();
    page = await newPage(browser, viewport);
    await steps(page, figures);
    done(figures);
  } catch (e) {
    await failed(e, page, failedShot);
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
}
