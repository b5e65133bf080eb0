//! [`FieldFilter`]: a search's filters on a crawl.log line's own fields, the website
//! host (`site`) and the fetch status, as the live view filters them. Another format's
//! line never passes a filter that is set.

use contracts::status_filter::StatusFilter;

use crate::error::ArchieError;

/// Filters on a crawl.log line's site and status.
#[derive(Debug, Clone, Default)]
pub struct FieldFilter {
    /// Website hosts, lower case (any of them).
    sites: Vec<String>,
    /// Statuses: codes, classes, ranges.
    status: Option<StatusFilter>,
}

impl FieldFilter {
    /// From the `site` (comma-separated hosts) and `status` (`200,4xx,500-599`) query
    /// values; `None` when neither is set.
    pub fn parse(
        site: Option<&str>,
        status: Option<&str>,
    ) -> Result<Option<FieldFilter>, ArchieError> {
        let sites: Vec<String> = site
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        let status = match status.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => {
                Some(StatusFilter::parse(s).map_err(|e| ArchieError::BadRequest(e.to_string()))?)
            }
            None => None,
        };
        if sites.is_empty() && status.is_none() {
            return Ok(None);
        }
        Ok(Some(FieldFilter { sites, status }))
    }

    /// Whether a line of `format` passes: its status is the second field of a crawl.log
    /// line, its URL the fourth, whose host is the site (as `crawled_url.host`).
    pub fn matches(&self, format: &str, line: &str) -> bool {
        if format != "crawl_log" {
            return false;
        }
        let mut fields = line.split_ascii_whitespace();
        let status = fields.nth(1).and_then(|s| s.parse::<i64>().ok());
        if let Some(f) = &self.status
            && !status.is_some_and(|s| f.matches(s))
        {
            return false;
        }
        if !self.sites.is_empty() {
            let Some(url) = fields.nth(1) else {
                return false;
            };
            let host = contracts::crawled_url::url_host(url);
            if !self.sites.iter().any(|s| host.eq_ignore_ascii_case(s)) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "2018-11-26T14:27:48.282Z   404        233 http://acid.matkelly.com/robots.txt P http://acid.matkelly.com/ text/html #002 - - -";

    #[test]
    fn site_and_status_read_the_crawl_log_fields() {
        let f = |site: Option<&str>, status: Option<&str>| {
            FieldFilter::parse(site, status).unwrap().unwrap()
        };
        assert!(f(Some("ACID.matkelly.com"), None).matches("crawl_log", LINE));
        assert!(f(Some("other.org, acid.matkelly.com"), Some("4xx")).matches("crawl_log", LINE));
        assert!(!f(Some("matkelly.com"), None).matches("crawl_log", LINE));
        assert!(!f(None, Some("200,5xx")).matches("crawl_log", LINE));
        assert!(f(None, Some("400-404")).matches("crawl_log", LINE));
        assert!(!f(None, Some("4xx")).matches("plain", LINE));
        assert!(FieldFilter::parse(Some(" "), Some("")).unwrap().is_none());
        assert!(FieldFilter::parse(None, Some("4zz")).is_err());
    }
}
