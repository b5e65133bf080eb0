// The filter: what the user typed, the URL that shares it, the payload the bucks get,
// and the pattern that highlights matches in the lines.

// `site` is the website (the crawled URL's host); `host` is the crawler machine.
export const FILTER_KEYS = ["crawl", "site", "status", "mime", "host", "app", "format", "text", "regex"];

/** The filter in a URL's query string (?crawl=..&status=4xx). Empty values are left out. */
export function filterFromSearch(search) {
  const q = new URLSearchParams(search);
  const f = {};
  for (const k of FILTER_KEYS) {
    const v = (q.get(k) || "").trim();
    if (v) f[k] = v;
  }
  return f;
}

/** Writes the filter into the page's URL without reloading, keeping other parameters. */
export function filterToUrl(filter) {
  const url = new URL(location.href);
  for (const k of FILTER_KEYS) {
    if (filter[k]) url.searchParams.set(k, filter[k]);
    else url.searchParams.delete(k);
  }
  history.replaceState(null, "", url);
}

/** A global pattern over what the filter's text and regex match, or null. */
export function highlighter(filter) {
  const parts = [];
  if (filter.text) parts.push(filter.text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (filter.regex) {
    try {
      new RegExp(filter.regex); // the bucks use Rust's syntax: highlight only what JS reads alike
      parts.push(`(?:${filter.regex})`);
    } catch {
      /* not highlightable here; the bucks still filter */
    }
  }
  if (!parts.length) return null;
  try {
    return new RegExp(parts.join("|"), filter.regex ? "g" : "gi");
  } catch {
    return null;
  }
}
