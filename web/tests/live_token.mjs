// The live view served by a buck that has an API token ("other"), beside an open one
// (`sluice up`'s "local"), both homes of the crawl, in Debian's chromium: without the
// token the open buck's lines show and "other" is red with a banner that points at the
// token box; a wrong token is refused again; the right one brings other's copy of every
// line and the crawl list, and stays in the browser, never in the URL.
// Prints one JSON object a line: {"step": ...}, then {"done": true, ...figures} or
// {"fail": "..."} (and exits 1).
//
// usage: node live_token.mjs OTHER_URL CRAWL TOKEN LINES SCREENSHOT_PATH
import { check, out, runInPage } from "./live_page.mjs";

const [otherUrl, crawl, token, linesArg, screenshot] = process.argv.slice(2);
const lines = Number(linesArg);

const state = (page, id) => page.evaluate((i) => sluiceLive.stats().bucks.find((b) => b.id === i)?.state, id);
const banner = (page) => page.evaluate(() => { const b = document.querySelector("#banner"); return b.hidden ? "" : b.textContent; });
const invalid = (page) => page.evaluate(() => document.querySelector("#token").getAttribute("aria-invalid"));

// Enters `value` in the token box as a user does: type it, leave the box.
async function enterToken(page, value) {
  await page.fill("#token", value);
  await page.press("#token", "Tab");
}

await runInPage({ width: 1280, height: 800 }, screenshot, async (page, figures) => {
  await page.goto(`${otherUrl}/ui/live?crawl=${crawl}`);

  // 1. No token: the open buck's lines, the refusing buck red, the banner and the box.
  await page.waitForFunction(
    (n) => window.sluiceLive && sluiceLive.stats().lines >= n
      && sluiceLive.stats().bucks.some((b) => b.id === "local" && b.state === "green")
      && sluiceLive.stats().bucks.some((b) => b.id === "other" && b.state === "red"),
    lines, { timeout: 20000 });
  figures.lines_before_token = await page.evaluate(() => sluiceLive.stats().lines);
  check((await page.evaluate(() => sluiceLive.fromBuck("other").length)) === 0, "lines from the refusing buck before the token");
  const asked = await banner(page);
  check(asked.includes("Buck other needs the API token") && asked.includes("token box"), `banner without a token: ${asked}`);
  check(!asked.includes("was refused"), `banner says a token was refused before one was entered: ${asked}`);
  check(await page.isVisible("#token"), "no token box while a buck wants the token");
  check((await invalid(page)) === "true", "the token box is not marked while a buck wants the token");
  check((await page.evaluate(() => document.querySelectorAll("#crawl-list option").length)) === 0, "the crawl list loaded without the token");
  out({ step: "refused without a token", lines: figures.lines_before_token, banner: asked });

  // 2. A wrong token: refused again, and the banner says so.
  await enterToken(page, "not-" + token);
  await page.waitForFunction(() => {
    const b = document.querySelector("#banner");
    return !b.hidden && b.textContent.includes("the one entered was refused");
  }, null, { timeout: 10000 });
  check((await state(page, "other")) === "red", "a wrong token was taken");
  out({ step: "a wrong token refused" });

  // 3. The right token: the buck turns green and sends its copy of every line.
  await enterToken(page, token);
  await page.waitForFunction(
    (n) => sluiceLive.stats().bucks.every((b) => b.state === "green") && sluiceLive.fromBuck("other").length >= n,
    lines, { timeout: 20000 });
  figures.lines_from_token_buck = await page.evaluate(() => new Set(sluiceLive.fromBuck("other")).size);
  const ids = await page.evaluate(() => sluiceLive.ids());
  check(ids.length === lines && new Set(ids).size === lines, `${ids.length} rows (${new Set(ids).size} ids), expected ${lines} once each`);
  await page.waitForFunction(() => document.querySelector("#banner").hidden, null, { timeout: 5000 });
  check((await invalid(page)) === "false", "the token box is still marked");
  await page.waitForFunction((c) => [...document.querySelectorAll("#crawl-list option")].some((o) => o.value === c), crawl, { timeout: 5000 });
  check((await page.evaluate(() => localStorage.getItem("sluice-api-token"))) === token, "the token is not kept in the browser");
  check(!page.url().includes(token), `the token is in the URL: ${page.url()}`);
  out({ step: "the token taken", lines_from_token_buck: figures.lines_from_token_buck });

  // 4. A reload reads the kept token: green at once, no banner.
  await page.reload();
  await page.waitForFunction(
    () => window.sluiceLive && sluiceLive.stats().bucks.length === 2 && sluiceLive.stats().bucks.every((b) => b.state === "green"),
    null, { timeout: 20000 });
  check((await page.inputValue("#token")) === token, "the token box is empty after a reload");
  out({ step: "kept across a reload" });

  await page.screenshot({ path: screenshot });
});
