// The live view as an operator's tool, in Debian's chromium (playwright-core) against the
// real pipeline: `sluice up` (buck "local") plus a second buck ("other"), both homes of
// the crawl. Real Heritrix crawl.log lines (re-timed to now, the rest of each line as
// recorded) are appended to the tailed file by this script.
//
// Checks, as the user sees them: crawl.log columns for a known line; a `site` filter
// showing exactly that website's lines; click a value to filter on it; a row expanded to
// its whole line with the match past the cut-off highlighted; buck "other" killed: a
// banner naming it and a gap marker; lines written during the outage; "other" restarted
// (this script starts it, on the same ports): every line of the outage arrives from it.
//
// Prints one JSON object a line: {"step": ...}, then {"done": true, ...} or {"fail": ...}.
//
// usage: node live_columns.mjs UP_URL LOG_FILE CRAWL REAL_LOG_A REAL_LOG_B PID_OTHER
//        SHOT_DIR BUCK_EXE OTHER_CONFIG OTHER_INGEST OTHER_HTTP OTHER_PID_FILE OTHER_LOG
import { spawn } from "node:child_process";
import { appendFileSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { bothBucksGreen, check, openLiveView, out, runInPage } from "./live_page.mjs";

const [upUrl, logFile, crawl, realA, realB, pidOther, shots, buckExe, otherConfig, otherIngest,
  otherHttp, otherPidFile, otherLog] = process.argv.slice(2);

// Real lines, their recorded timestamp replaced by now (+1 ms a line, so order holds).
const realLines = (file) => readFileSync(file, "utf8").split("\n").filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
let clockMs = Date.now();
function append(lines) {
  const written = lines.map((l) => {
    clockMs = Math.max(clockMs + 1, Date.now());
    return new Date(clockMs).toISOString() + l.slice(l.indexOf(" "));
  });
  appendFileSync(logFile, written.map((l) => l + "\n").join(""));
  return written;
}
// What a crawl.log line's columns are, from the file (not from the page's code).
const cols = (l) => {
  const t = l.split(/\s+/);
  return { status: t[1], size: t[2], url: t[3], hop: t[4], via: t[5], mime: t[6] };
};
const siteOf = (url) => {
  if (url.startsWith("dns:")) return url.slice(4).toLowerCase();
  return new URL(url).hostname.toLowerCase();
};
const rest = (l) => l.slice(l.indexOf(" ")); // a line without its time, as written

await runInPage({ width: 1600, height: 900 }, `${shots}/live-columns-failed.png`, async (page, figures) => {
  await openLiveView(page, upUrl, crawl);

  // 1. Real lines in; every one shown once.
  const batchA = append(realLines(realA));
  await page.waitForFunction((n) => sluiceLive.stats().lines >= n, batchA.length, { timeout: 10000 });
  const shownA = await page.evaluate(() => sluiceLive.lines());
  check(shownA.length === batchA.length, `${shownA.length} lines shown, ${batchA.length} written`);
  out({ step: "real lines shown", lines: shownA.length });

  // 2. A site filter: exactly that website's lines, and their columns.
  const site = "www.raeder.dk";
  const wantSite = batchA.filter((l) => siteOf(cols(l).url) === site).map(rest);
  check(wantSite.length >= 2, `the sample has ${wantSite.length} lines of ${site}`);
  await page.fill("#f-site", site);
  await page.press("#f-site", "Enter");
  await page.waitForFunction(() => location.search.includes("site=www.raeder.dk"), null, { timeout: 2000 });
  await page.waitForFunction(bothBucksGreen, null, { timeout: 10000 });
  await page.waitForFunction((n) => sluiceLive.stats().lines >= n, wantSite.length, { timeout: 5000 });
  const shownSite = (await page.evaluate(() => sluiceLive.lines())).map(rest).sort();
  check(JSON.stringify(shownSite) === JSON.stringify([...wantSite].sort()),
    `site=${site} shows ${shownSite.length} lines, want exactly ${wantSite.length}: ${JSON.stringify(shownSite)}`);
  const domRows = await page.$$eval("#rows .row", (rs) => rs.filter((r) => r.style.display !== "none").map((r) => {
    const o = {};
    for (const c of r.children) if (getComputedStyle(c).display !== "none") o[c.className.split(" ")[0]] = c.textContent;
    return o;
  }));
  check(domRows.length === wantSite.length, `${domRows.length} rows on screen, want ${wantSite.length}`);
  check(domRows.every((r) => r.site === site), `a row's site column is not ${site}: ${JSON.stringify(domRows)}`);
  const known = batchA.find((l) => cols(l).url === "http://www.raeder.dk/robots.txt");
  const k = cols(known);
  const row = domRows.find((r) => r.url === k.url);
  check(row, `no row for ${k.url}`);
  for (const key of ["status", "size", "url", "hop", "via", "mime"]) {
    check(row[key] === k[key], `column ${key} shows ${JSON.stringify(row[key])}, the line has ${JSON.stringify(k[key])}`);
  }
  check(row.time === known.slice(11, 23), `time column ${row.time} for ${known.slice(0, 24)}`);
  check(row.crawler && row.crawler !== site, `crawler column ${row.crawler}`);
  await page.screenshot({ path: `${shots}/live-columns-site.png` });
  out({ step: "site filter and columns", site, lines: shownSite.length, row });

  // 3. Click a value to filter on it: the mime of the robots.txt row.
  await page.fill("#f-site", "");
  await page.press("#f-site", "Enter");
  await page.waitForFunction(bothBucksGreen, null, { timeout: 10000 });
  await page.waitForFunction((n) => sluiceLive.stats().lines >= n, batchA.length, { timeout: 5000 });
  // The last row on screen, whatever its MIME type.
  const mime = await page.$$eval("#rows .row.cl", (rs) => {
    const vis = rs.filter((r) => r.style.display !== "none" && r._ev);
    vis.sort((a, b) => a._idx - b._idx);
    const cell = vis[vis.length - 1].querySelector(".mime");
    cell.click();
    return cell.textContent;
  });
  await page.waitForFunction((m) => new URLSearchParams(location.search).get("mime") === m, mime, { timeout: 2000 });
  check((await page.inputValue("#f-mime")) === mime, "the mime input shows the clicked value");
  const wantMime = batchA.filter((l) => cols(l).mime === mime).length;
  await page.waitForFunction(bothBucksGreen, null, { timeout: 10000 });
  await page.waitForFunction((n) => sluiceLive.stats().lines >= n, wantMime, { timeout: 5000 });
  const shownMime = await page.evaluate(() => sluiceLive.lines());
  check(shownMime.length === wantMime && shownMime.every((l) => cols(l).mime === mime),
    `mime=${mime} shows ${shownMime.length} lines, want ${wantMime}`);
  out({ step: "click a mime value filters on it", mime, lines: shownMime.length });

  // 4. Expand a row: the whole line, the text match past the cut-off highlighted.
  const tail = known.split(/\s+/).pop(); // the annotations, at the far end of the line
  await page.goto(`${upUrl}/ui/live?crawl=${crawl}&site=${site}&text=${encodeURIComponent(tail)}`);
  await page.waitForFunction(bothBucksGreen, null, { timeout: 20000 });
  await page.waitForFunction(() => sluiceLive.stats().lines >= 1, null, { timeout: 5000 });
  await page.focus("#rows .row.cl");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#detail:not([hidden])", { timeout: 2000 });
  const detail = await page.$eval("#detail-line", (e) => ({ text: e.textContent, marks: [...e.querySelectorAll("mark")].map((m) => m.textContent) }));
  check(detail.text === known, `expanded line ${JSON.stringify(detail.text)}, want ${JSON.stringify(known)}`);
  check(detail.marks.length === 1 && detail.marks[0] === tail, `marks ${JSON.stringify(detail.marks)}, want [${tail}]`);
  await page.screenshot({ path: `${shots}/live-columns-expanded.png` });
  out({ step: "row expanded with the match highlighted", mark: tail });

  // 5. Buck "other" killed: a banner naming it, a gap marker.
  await page.goto(`${upUrl}/ui/live?crawl=${crawl}`);
  await page.waitForFunction(bothBucksGreen, null, { timeout: 20000 });
  await page.waitForFunction((n) => sluiceLive.stats().lines >= n, batchA.length, { timeout: 5000 });
  process.kill(Number(pidOther), "SIGKILL");
  await page.waitForSelector("#banner:not([hidden])", { timeout: 15000 });
  const banner = await page.textContent("#banner");
  check(/Buck other is down since \d\d:\d\d:\d\d UTC/.test(banner), `banner: ${banner}`);
  // The marker joins the stream at the page's next animation frame, just after the banner.
  await page.waitForFunction(() => sluiceLive.gaps().length > 0, null, { timeout: 2000 });
  const gaps = await page.evaluate(() => sluiceLive.gaps());
  check(gaps.length === 1 && gaps[0].buck === "other" && !gaps[0].back, `gap markers ${JSON.stringify(gaps)}`);
  const gapShown = await page.$$eval("#rows .row.gap", (rs) => rs.map((r) => r.textContent));
  check(gapShown.length === 1 && gapShown[0].includes("buck other down since"), `gap row ${JSON.stringify(gapShown)}`);
  out({ step: "banner and gap marker", banner });

  // 6. Lines written while "other" is down (they reach "local"), then "other" restarted.
  const outage = append(realLines(realB).slice(0, 47));
  await page.waitForFunction((n) => sluiceLive.stats().lines >= n, batchA.length + outage.length, { timeout: 10000 });
  await page.screenshot({ path: `${shots}/live-buck-down.png` });
  const outageIds = await page.evaluate((want) => {
    const w = new Set(want);
    return sluiceLive.rows().filter((r) => w.has(r.line.slice(r.line.indexOf(" ")))).map((r) => r.id);
  }, outage.map(rest));
  check(outageIds.length === outage.length, `${outageIds.length} outage lines shown, ${outage.length} written`);
  const fromOtherBefore = await page.evaluate(() => sluiceLive.fromBuck("other"));
  check(!outageIds.some((id) => fromOtherBefore.includes(id)), "a dead buck sent an outage line");

  const logFd = openSync(otherLog, "a");
  const child = spawn(buckExe, ["--config", otherConfig, "--ingest", otherIngest, "--http", otherHttp],
    { stdio: ["ignore", logFd, logFd], detached: true });
  writeFileSync(otherPidFile, String(child.pid));
  child.unref();
  const t0 = Date.now();
  await page.waitForFunction(bothBucksGreen, null, { timeout: 30000 });
  await page.waitForFunction(
    (ids) => { const got = new Set(sluiceLive.fromBuck("other")); return ids.every((id) => got.has(id)); },
    outageIds, { timeout: 20000 }).catch(() => {});
  const fromOther = new Set(await page.evaluate(() => sluiceLive.fromBuck("other")));
  const arrived = outageIds.filter((id) => fromOther.has(id)).length;
  figures.outage_lines = outage.length;
  figures.outage_lines_from_restarted_buck = arrived;
  figures.restart_to_caught_up_ms = Date.now() - t0;
  check(arrived === outage.length, `after its restart buck other sent ${arrived} of the ${outage.length} outage lines`);
  check(!(await page.isVisible("#banner")), "the banner is gone once the buck is back");
  const after = await page.evaluate(() => sluiceLive.gaps());
  check(after.length === 1 && after[0].back && /was down .* caught up \d+ lines/.test(after[0].text), `gap after: ${JSON.stringify(after)}`);
  // Lines received join the view at the next animation frame.
  await page.waitForFunction((n) => sluiceLive.ids().length >= n, batchA.length + outage.length, { timeout: 2000 }).catch(() => {});
  const ids = await page.evaluate(() => sluiceLive.ids());
  check(ids.length === new Set(ids).size, "an id shows twice");
  check(ids.length === batchA.length + outage.length, `${ids.length} lines in the view, ${batchA.length + outage.length} written`);
  await page.screenshot({ path: `${shots}/live-buck-back.png` });
  out({ step: "restarted buck sent every outage line", arrived, gap: after[0].text });
});
