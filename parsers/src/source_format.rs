//! `SourceFormat`: how a source's lines are parsed, as named in configuration.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::UnknownFormat;

/// How a source's lines are parsed (config names: `crawl_log`, `syslog`, `plain`, `auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Heritrix crawl.log (Heritrix 1 and 3, with or without the JSON extra field).
    CrawlLog,
    /// Syslog: RFC 5424, else RFC 3164 (with or without `<PRI>`, or with an RFC 3339 time
    /// as rsyslog writes files).
    Syslog,
    /// Any text; a timestamp near the start of the line is sniffed.
    Plain,
    /// Per line: crawl.log, then RFC 5424, then RFC 3164, then plain. Never a parse failure.
    #[default]
    Auto,
}

impl SourceFormat {
    /// Every format, in the order of their config names.
    pub const ALL: [SourceFormat; 4] = [
        SourceFormat::CrawlLog,
        SourceFormat::Syslog,
        SourceFormat::Plain,
        SourceFormat::Auto,
    ];

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::CrawlLog => "crawl_log",
            SourceFormat::Syslog => "syslog",
            SourceFormat::Plain => "plain",
            SourceFormat::Auto => "auto",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SourceFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_to_use() {
        for f in SourceFormat::ALL {
            assert_eq!(f.name().parse::<SourceFormat>(), Ok(f));
        }
        let err = "json"
            .parse::<SourceFormat>()
            .expect_err("json is not a format");
        assert!(err.to_string().contains("\"json\""), "{err}");
        assert!(err.to_string().contains("crawl_log"), "{err}");
    }
}
