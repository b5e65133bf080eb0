//! The `crawled_url` row of a crawl.log event: the columns Heritrix's trough feed writes,
//! derived from the event's parsed fields. The buck stores it; archie reads it.

use serde_json::Value;

use crate::{Event, Field, Format};

/// One row of the `crawled_url` table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrawledUrl {
    /// The log line's timestamp (ISO 8601, as Heritrix wrote it).
    pub timestamp: String,
    /// Fetch status (HTTP status, or Heritrix's negative codes).
    pub status_code: i64,
    /// Record size: the extra JSON's `contentSize` when logged, else the size field.
    pub size: Option<i64>,
    /// The size field: bytes of content.
    pub payload_size: Option<i64>,
    /// The URL.
    pub url: String,
    /// Discovery path (`L`, `E`, `R`, ...).
    pub hop_path: String,
    /// Whether the URL was reached by one redirect from a seed (hop path exactly `R`).
    pub is_seed_redirect: bool,
    /// The URL it was discovered from.
    pub via: Option<String>,
    /// MIME type.
    pub mimetype: Option<String>,
    /// Content digest (`sha1:...`).
    pub content_digest: Option<String>,
    /// The seed (the source tag, when Heritrix logs it).
    pub seed: Option<String>,
    /// Whether the fetch was a duplicate (annotated `duplicate:` or `warcRevisit`).
    pub is_duplicate: bool,
    /// WARC file written, from the extra JSON.
    pub warc_filename: Option<String>,
    /// Offset in the WARC file.
    pub warc_offset: Option<i64>,
    /// Length of the WARC record.
    pub warc_content_bytes: Option<i64>,
    /// Host of the URL (the name for `dns:` lookups).
    pub host: String,
}

fn dash_none(s: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    s.filter(|v| v != "-" && !v.is_empty())
        .map(|v| v.into_owned())
}

/// The host part of a URL (lowercased), or the name of a `dns:` URL.
pub fn url_host(url: &str) -> String {
    if let Some(name) = url.strip_prefix("dns:") {
        return name.to_ascii_lowercase();
    }
    let Some((_, rest)) = url.split_once("://") else {
        return String::new();
    };
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = auth.rsplit('@').next().unwrap_or("");
    let host = if host_port.starts_with('[') {
        host_port
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or("").to_owned()
    };
    host.to_ascii_lowercase()
}

impl CrawledUrl {
    /// Derives the row from a crawl.log event; `None` for other formats or a line
    /// without a status and URL.
    pub fn from_event(e: &Event) -> Option<CrawledUrl> {
        if e.format != Format::CrawlLog {
            return None;
        }
        let status_code = e.field_str(Field::Status)?.trim().parse().ok()?;
        let url = e.field_str(Field::Url)?.into_owned();
        let payload_size = e.field_str(Field::Size).and_then(|s| s.trim().parse().ok());
        let extra: Option<Value> = e
            .field(Field::Extra)
            .and_then(|b| serde_json::from_slice(b).ok());
        let ex_i64 = |k: &str| {
            extra
                .as_ref()
                .and_then(|x| x.get(k))
                .and_then(Value::as_i64)
        };
        let ex_str = |k: &str| {
            extra
                .as_ref()
                .and_then(|x| x.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let hop_path = e
            .field_str(Field::HopPath)
            .map(|s| s.into_owned())
            .unwrap_or_default();
        let annotations = e.field_str(Field::Annotations).unwrap_or_default();
        let is_duplicate = annotations
            .split(',')
            .any(|a| a.starts_with("duplicate:") || a == "warcRevisit");
        Some(CrawledUrl {
            timestamp: e
                .field_str(Field::LogTime)
                .map(|s| s.into_owned())
                .unwrap_or_else(|| e.time().to_rfc3339()),
            status_code,
            size: ex_i64("contentSize").or(payload_size),
            payload_size,
            host: url_host(&url),
            url,
            is_seed_redirect: hop_path == "R",
            hop_path,
            via: dash_none(e.field_str(Field::Via)),
            mimetype: dash_none(e.field_str(Field::MimeType)),
            content_digest: dash_none(e.field_str(Field::Digest)),
            seed: dash_none(e.field_str(Field::SourceTag)),
            is_duplicate,
            warc_filename: ex_str("warcFilename"),
            warc_offset: ex_i64("warcFileOffset"),
            warc_content_bytes: ex_i64("warcFileRecordLength"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            url_host("http://User@WWW.Example.com:8080/a?b"),
            "www.example.com"
        );
        assert_eq!(url_host("dns:acid.matkelly.com"), "acid.matkelly.com");
        assert_eq!(url_host("https://[::1]:80/"), "[::1]");
        assert_eq!(url_host("whois:x"), "");
    }
}
