//! `Filter`: what one client asked to see, compiled once and matched against every event
//! the buck publishes, so only matching events cross the network.

use contracts::crawled_url::url_host;
use contracts::event::{Field, Format};
use contracts::status_filter::StatusFilter;
use contracts::{Event, tokenizer};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::FilterError;

/// Compiled-program bound for client regexes: enough for any hand-written pattern, small
/// enough that a hostile one cannot take the buck's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The `subscribe` payload as the client sends it. Every field is optional; an empty
/// object subscribes to everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRequest {
    /// Exact crawl id.
    pub crawl: Option<String>,
    /// The crawler machine's host name (the tailer's `host`), exact, case-insensitive.
    pub host: Option<String>,
    /// The website: the crawled URL's host (as `contracts::crawled_url::url_host` computes
    /// it), exact, case-insensitive. Comma-separated alternatives.
    pub site: Option<String>,
    /// The crawl.log MIME type, case-insensitive: exact (`text/html`) or a family
    /// (`image/*`). Comma-separated alternatives.
    pub mime: Option<String>,
    /// Exact app name, case-insensitive.
    pub app: Option<String>,
    /// `plain`, `crawl_log` or `syslog`.
    pub format: Option<String>,
    /// Fetch statuses, in `contracts::status_filter`'s syntax: comma-separated codes
    /// (`200`, `-5002`), classes (`4xx`) or ranges (`400-499`).
    pub status: Option<String>,
    /// Text to find in the line, case-insensitive.
    pub text: Option<String>,
    /// `substring` (default) or `token` (whole tokens, as `contracts::tokenizer` cuts them).
    pub text_mode: Option<String>,
    /// A regex over the line.
    pub regex: Option<String>,
    /// How many recent matching events to send first.
    pub backfill: Option<usize>,
    /// How far back backfill may reach, in seconds.
    pub backfill_secs: Option<u64>,
    /// Catch-up after a reconnect: the time (RFC 3339) of the last event the client saw
    /// from this buck. Backfill then holds every matching event in the ring from that
    /// time on (up to `backfill` of them, whatever their age), so the lines a client missed
    /// while the buck was down arrive.
    pub after: Option<String>,
}

/// One `mime` alternative, lowercased.
#[derive(Debug)]
enum Mime {
    Exact(String),
    /// `image/*`: kept as `image/`.
    Family(String),
}

#[derive(Debug)]
enum Text {
    Substring(Regex),
    Token(String),
}

/// A compiled filter.
#[derive(Debug, Default)]
pub struct Filter {
    crawl: Option<String>,
    host: Option<String>,
    site: Vec<String>,
    mime: Vec<Mime>,
    app: Option<String>,
    format: Option<Format>,
    status: Option<StatusFilter>,
    text: Option<Text>,
    regex: Option<Regex>,
    /// Backfill asked for, already capped by the config.
    pub backfill: usize,
    /// Backfill age asked for, in seconds, already capped by the config.
    pub backfill_secs: u64,
    /// Catch-up start (event time, microseconds since the epoch): backfill from here
    /// instead of by age.
    pub after_us: Option<i64>,
    echo: Value,
}

impl Filter {
    /// Compiles a `subscribe` payload, within the config's limits.
    pub fn compile(payload: &Value, cfg: &crate::LiveConfig) -> Result<Filter, FilterError> {
        let req: FilterRequest = match payload {
            // socket.io-client's `emit("subscribe")` with no argument.
            Value::Null => FilterRequest::default(),
            v => FilterRequest::deserialize(v).map_err(|e| FilterError::Payload(e.to_string()))?,
        };
        let nonempty = |s: Option<String>| {
            s.filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_owned())
        };
        let format = match nonempty(req.format) {
            None => None,
            Some(f) => Some(Format::from_name(&f).ok_or(FilterError::Format(f))?),
        };
        let status_text = nonempty(req.status);
        let status = status_text
            .as_deref()
            .map(StatusFilter::parse)
            .transpose()?;
        let text_text = req.text.filter(|t| !t.is_empty());
        let text = match (text_text.clone(), req.text_mode.as_deref()) {
            (None, _) => None,
            (Some(t), None | Some("substring")) => Some(Text::Substring(
                RegexBuilder::new(&regex::escape(&t))
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| FilterError::Regex(e.to_string()))?,
            )),
            (Some(t), Some("token")) => Some(Text::Token(t)),
            (Some(_), Some(m)) => return Err(FilterError::TextMode(m.to_owned())),
        };
        let regex_text = req.regex.filter(|r| !r.is_empty());
        let regex = match &regex_text {
            None => None,
            Some(r) if r.len() > cfg.max_regex_bytes => {
                return Err(FilterError::RegexTooLong {
                    len: r.len(),
                    max: cfg.max_regex_bytes,
                });
            }
            Some(r) => Some(
                RegexBuilder::new(r)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| FilterError::Regex(e.to_string()))?,
            ),
        };
        let crawl = nonempty(req.crawl);
        let host = nonempty(req.host);
        let site_text = nonempty(req.site);
        let site = list(site_text.as_deref());
        let mime_text = nonempty(req.mime);
        let mime = list(mime_text.as_deref())
            .into_iter()
            .map(|m| match m.strip_suffix('*') {
                Some(family) => Mime::Family(family.to_owned()),
                None => Mime::Exact(m),
            })
            .collect();
        let after_text = nonempty(req.after);
        let after_us = match &after_text {
            None => None,
            Some(t) => Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| FilterError::After(t.clone()))?
                    .timestamp_micros(),
            ),
        };
        let app = nonempty(req.app);
        let backfill = req.backfill.unwrap_or(0).min(cfg.backfill_events);
        let backfill_secs = req
            .backfill_secs
            .unwrap_or(cfg.backfill_secs)
            .min(cfg.backfill_secs);
        let echo = json!({
            "crawl": crawl, "host": host, "site": site_text, "mime": mime_text, "app": app, "format": format.map(|f| f.name()),
            "status": status_text, "text": text_text,
            "text_mode": match text { Some(Text::Token(_)) => "token", _ => "substring" },
            "regex": regex_text, "backfill": backfill, "backfill_secs": backfill_secs, "after": after_text,
        });
        Ok(Filter {
            crawl,
            host,
            site,
            mime,
            app,
            format,
            status,
            text,
            regex,
            backfill,
            backfill_secs,
            after_us,
            echo,
        })
    }

    /// The filter as understood, for the `subscribed` reply.
    pub fn echo(&self) -> &Value {
        &self.echo
    }

    /// Whether `e` passes. Cheap tests first; the line is only decoded when a text or
    /// regex test needs it.
    pub fn matches(&self, e: &Event) -> bool {
        if self.crawl.as_deref().is_some_and(|c| c != e.crawl.as_str())
            || self
                .host
                .as_deref()
                .is_some_and(|h| !h.eq_ignore_ascii_case(&e.host))
            || self
                .app
                .as_deref()
                .is_some_and(|a| !a.eq_ignore_ascii_case(&e.app))
            || self.format.is_some_and(|f| f != e.format)
        {
            return false;
        }
        if let Some(want) = &self.status {
            let code = e
                .field_str(Field::Status)
                .and_then(|s| s.trim().parse::<i64>().ok());
            if !code.is_some_and(|c| want.matches(c)) {
                return false;
            }
        }
        if !self.site.is_empty() {
            let Some(url) = e.field_str(Field::Url) else {
                return false;
            };
            let site = url_host(&url);
            if !self.site.contains(&site) {
                return false;
            }
        }
        if !self.mime.is_empty() {
            let Some(m) = e.field_str(Field::MimeType) else {
                return false;
            };
            let m = m.trim().to_ascii_lowercase();
            let hit = self.mime.iter().any(|want| match want {
                Mime::Exact(x) => *x == m,
                Mime::Family(f) => m.starts_with(f.as_str()),
            });
            if !hit {
                return false;
            }
        }
        if self.text.is_none() && self.regex.is_none() {
            return true;
        }
        let line = e.line();
        let text_ok = match &self.text {
            None => true,
            Some(Text::Substring(re)) => re.is_match(&line),
            Some(Text::Token(t)) => tokenizer::has_token(&line, t),
        };
        text_ok && self.regex.as_ref().is_none_or(|re| re.is_match(&line))
    }
}

/// A comma-separated list, trimmed and lowercased, empty parts left out.
fn list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LiveConfig;
    use contracts::CrawlId;
    use contracts::event::{EventFlags, EventId, FieldSpan};

    fn ev(crawl: &str, host: &str, status: &str, rest: &str) -> Event {
        let line = format!("2026-11-21T10:00:00.000Z {status} 10 {rest}");
        let start = line.find(' ').unwrap() as u32 + 1;
        Event {
            id: EventId {
                tailer: 1,
                file_seq: 1,
                offset: 0,
            },
            time_us: 0,
            flags: EventFlags::default(),
            original_len: line.len() as u64,
            format: Format::CrawlLog,
            crawl: CrawlId::parse(crawl).unwrap(),
            host: host.into(),
            app: "heritrix".into(),
            fields: vec![FieldSpan {
                field: Field::Status,
                start,
                len: status.len() as u32,
            }],
            raw: line.into_bytes(),
        }
    }

    /// A crawl.log event with its status, URL and MIME type spans, as the parser marks them.
    fn crawled(url: &str, mime: &str) -> Event {
        let mut e = ev("c1", "crawler-07", "200", "");
        let line = format!("2026-11-21T10:00:00.000Z 200 10 {url} L http://via/ {mime} #001");
        let span = |field, s: &str| FieldSpan {
            field,
            start: line.find(s).unwrap() as u32,
            len: s.len() as u32,
        };
        e.fields = vec![
            span(Field::Status, " 200 "),
            span(Field::Url, url),
            span(Field::MimeType, mime),
        ];
        e.fields[0].start += 1;
        e.fields[0].len = 3;
        e.original_len = line.len() as u64;
        e.raw = line.into_bytes();
        e
    }

    #[test]
    fn site_is_the_urls_host_not_the_crawler() {
        let e = crawled("https://WWW.Example.com:8443/a?b=c", "text/html");
        assert!(f(json!({"site": "www.example.com"})).unwrap().matches(&e));
        assert!(f(json!({"site": "WWW.EXAMPLE.COM"})).unwrap().matches(&e));
        assert!(
            f(json!({"site": "a.org, www.example.com"}))
                .unwrap()
                .matches(&e)
        );
        assert!(!f(json!({"site": "example.com"})).unwrap().matches(&e));
        assert!(!f(json!({"site": "crawler-07"})).unwrap().matches(&e));
        assert!(f(json!({"host": "crawler-07"})).unwrap().matches(&e));
        let dns = crawled("dns:www.example.com", "text/dns");
        assert!(f(json!({"site": "www.example.com"})).unwrap().matches(&dns));
        // A line without a URL field (syslog, plain) never matches a site filter.
        let no_url = ev("c1", "h", "200", "http://www.example.com/");
        assert!(
            !f(json!({"site": "www.example.com"}))
                .unwrap()
                .matches(&no_url)
        );
    }

    #[test]
    fn mime_exact_or_family() {
        let html = crawled("http://a/", "text/html");
        let png = crawled("http://a/i.png", "image/png");
        assert!(f(json!({"mime": "TEXT/HTML"})).unwrap().matches(&html));
        assert!(!f(json!({"mime": "text/htm"})).unwrap().matches(&html));
        assert!(f(json!({"mime": "image/*"})).unwrap().matches(&png));
        assert!(!f(json!({"mime": "image/*"})).unwrap().matches(&html));
        assert!(
            f(json!({"mime": "image/*, text/html"}))
                .unwrap()
                .matches(&html)
        );
        let both = f(json!({"mime": "image/*", "site": "a", "status": "2xx"})).unwrap();
        assert!(both.matches(&png) && !both.matches(&html));
    }

    #[test]
    fn after_is_an_rfc3339_time() {
        let fl = f(json!({"after": "2026-11-21T10:00:00.000001Z", "backfill": 5})).unwrap();
        assert_eq!(fl.after_us, Some(1_795_255_200_000_001));
        assert_eq!(fl.echo()["after"], "2026-11-21T10:00:00.000001Z");
        assert_eq!(
            f(json!({"after": "yesterday"})).unwrap_err().code(),
            "bad_after"
        );
    }

    fn f(v: Value) -> Result<Filter, FilterError> {
        Filter::compile(&v, &LiveConfig::default())
    }

    /// The syntax itself is tested with `contracts::status_filter`; here, that the
    /// event's status field is what it is matched against, and how a refusal is named.
    #[test]
    fn status_matches_the_events_status_field() {
        let e404 = ev("c1", "h", "404", "http://a/ 200");
        let neg = ev("c1", "h", "-5002", "http://a/");
        assert!(f(json!({"status": "4xx"})).unwrap().matches(&e404));
        assert!(f(json!({"status": " 200, 404 "})).unwrap().matches(&e404));
        assert!(!f(json!({"status": "200"})).unwrap().matches(&e404));
        assert!(f(json!({"status": "-9999--1"})).unwrap().matches(&neg));
        assert!(!f(json!({"status": "-9999--1"})).unwrap().matches(&e404));
        // A line without a status field never matches a status filter.
        let mut no_status = e404.clone();
        no_status.fields.clear();
        assert!(!f(json!({"status": "4xx"})).unwrap().matches(&no_status));
        let refused = f(json!({"status": "200, 4x"})).unwrap_err();
        assert_eq!(refused.code(), "bad_status");
        assert!(refused.to_string().contains("\"4x\""), "{refused}");
    }

    #[test]
    fn fields_text_and_regex() {
        let e = ev("c1", "Crawler-07", "200", "http://www.Example.com/a.html");
        assert!(f(json!({})).unwrap().matches(&e));
        assert!(f(Value::Null).unwrap().matches(&e));
        assert!(
            f(json!({"crawl": "c1", "host": "crawler-07", "format": "crawl_log"}))
                .unwrap()
                .matches(&e)
        );
        assert!(!f(json!({"crawl": "c2"})).unwrap().matches(&e));
        assert!(!f(json!({"format": "syslog"})).unwrap().matches(&e));
        assert!(f(json!({"text": "EXAMPLE.COM/A"})).unwrap().matches(&e));
        assert!(!f(json!({"text": "example.org"})).unwrap().matches(&e));
        assert!(
            f(json!({"text": "www.example.com", "text_mode": "token"}))
                .unwrap()
                .matches(&e)
        );
        assert!(
            !f(json!({"text": "example", "text_mode": "token"}))
                .unwrap()
                .matches(&e)
        );
        assert!(f(json!({"regex": r"a\.html$"})).unwrap().matches(&e));
        assert!(!f(json!({"regex": r"^http"})).unwrap().matches(&e));
    }

    #[test]
    fn refusals() {
        assert_eq!(f(json!({"regex": "("})).unwrap_err().code(), "bad_regex");
        assert_eq!(
            f(json!({"regex": "a".repeat(1025)})).unwrap_err().code(),
            "regex_too_long"
        );
        // Short to type, huge to compile: the size limit refuses it.
        assert_eq!(
            f(json!({"regex": r"\w{1000}\w{1000}"})).unwrap_err().code(),
            "bad_regex"
        );
        assert_eq!(
            f(json!({"format": "xml"})).unwrap_err().code(),
            "bad_format"
        );
        assert_eq!(
            f(json!({"colour": "red"})).unwrap_err().code(),
            "bad_payload"
        );
        assert_eq!(f(json!("crawl")).unwrap_err().code(), "bad_payload");
        assert_eq!(
            f(json!({"text": "a", "text_mode": "fuzzy"}))
                .unwrap_err()
                .code(),
            "bad_text_mode"
        );
    }

    #[test]
    fn backfill_is_capped_by_config() {
        let fl = f(json!({"backfill": 1_000_000, "backfill_secs": 1_000_000})).unwrap();
        assert_eq!((fl.backfill, fl.backfill_secs), (200, 300));
    }
}
