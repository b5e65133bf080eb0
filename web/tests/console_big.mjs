// The SQL console in Debian's chromium against a running `sluice up`, with a large
// result: Run is disabled while a query runs and Cancel aborts it; 100,000 rows draw
// quickly as a virtual table and scroll to the last row; a result past sql_max_rows shows
// the truncation notice (not a row of "undefined"); the CSV download holds every row; the
// schema list names the views. Prints JSON lines; the last is {"done": true, ...} or
// {"fail": "..."}.
//
// usage: node console_big.mjs BASE_URL CRAWL SCREENSHOT DOWNLOAD_PATH
import { chromium } from "playwright-core";

const [base, crawl, shot, downloadPath] = process.argv.slice(2);
const rowsSql = (n) => `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${n}) SELECT i, i * 2 AS twice, 'row number ' || i AS label FROM n`;
let browser;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => process.stdout.write(JSON.stringify({ page_error: e.message }) + "\n"));
  await page.goto(`${base}/ui/sql`, { waitUntil: "networkidle" });
  await page.fill("#crawl", crawl);
  await page.dispatchEvent("#crawl", "change");
  const status = () => page.textContent("#status");
  const waitStatus = (re) => page.waitForFunction((s) => new RegExp(s).test(document.getElementById("status").textContent), re.source, { timeout: 60000 });

  // 1. A long query: Run disabled, Cancel enabled; Cancel aborts it.
  await page.fill("#sql", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n");
  const during = await page.evaluate(() => {
    document.getElementById("run").click();
    return { run: document.getElementById("run").disabled, cancel: document.getElementById("cancel").disabled };
  });
  await page.click("#cancel");
  await waitStatus(/cancelled/);
  const afterCancel = { run: await page.isDisabled("#run"), cancel: await page.isDisabled("#cancel") };

  // 2. 100,000 rows.
  await page.fill("#sql", rowsSql(100000));
  await page.click("#run");
  await waitStatus(/rows in/);
  const bigStatus = await status();
  const drawMs = Number(await page.getAttribute("#out", "data-draw-ms"));
  const domRows = await page.$$eval("#out tbody tr[aria-rowindex]", (r) => r.length);
  const noticeHidden = await page.isHidden("#notice");
  await page.screenshot({ path: shot, fullPage: true });
  await page.$eval("#out", (o) => { o.scrollTop = o.scrollHeight; });
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll("#out tbody tr[aria-rowindex]");
    return rows.length && rows[rows.length - 1].cells[0].textContent === "100000";
  }, null, { timeout: 10000 });
  const header = await page.$eval("#out th", (th) => ({ whiteSpace: getComputedStyle(th).whiteSpace, height: th.getBoundingClientRect().height }));

  // 3. Past sql_max_rows: the notice, and no "undefined" row.
  await page.fill("#sql", rowsSql(100001));
  await page.click("#run");
  await waitStatus(/rows in/);
  const notice = await page.textContent("#notice");
  const noticeShown = await page.isVisible("#notice");
  await page.$eval("#out", (o) => { o.scrollTop = o.scrollHeight; });
  await page.waitForTimeout(0);
  const undefinedCells = await page.$$eval("#out td", (tds) => tds.filter((t) => t.textContent === "undefined").length);

  // 4. The whole result as CSV, from the server.
  await page.fill("#sql", rowsSql(100000));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  await download.saveAs(downloadPath);

  // 5. The schema list.
  const schema = await page.textContent("#schema");
  const schemaItems = await page.$$eval("#schema li b", (b) => b.map((x) => x.textContent));
  process.stdout.write(JSON.stringify({ done: true, during, afterCancel, bigStatus, drawMs, domRows, noticeHidden, header, notice, noticeShown, undefinedCells, schema, schemaItems }) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ fail: String(e) }) + "\n");
} finally {
  if (browser) await browser.close();
}
