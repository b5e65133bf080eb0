//! [`StatusClass`]: the classes a crawl.log status code falls in, as every summary and
//! monitoring feed counts them, so that a chart and a Graphite series agree.

/// The class of one event's status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusClass {
    /// 100-199.
    Informational,
    /// 200-299.
    Success,
    /// 300-399.
    Redirect,
    /// 400-499.
    ClientError,
    /// 500-599.
    ServerError,
    /// A negative Heritrix code: the fetch failed (DNS, connection, timeout, robots...).
    Failed,
    /// Anything else: a line that is not a crawl.log line, or a code outside the HTTP
    /// ranges (Heritrix writes 1 for a DNS lookup, 0 for not attempted).
    Other,
}

impl StatusClass {
    /// Every class, in the order summaries list them.
    pub const ALL: [StatusClass; 7] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirect,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Failed,
        StatusClass::Other,
    ];

    /// The class of `status` (`None` for a line without one).
    pub fn of(status: Option<i64>) -> StatusClass {
        match status {
            Some(s) if s < 0 => StatusClass::Failed,
            Some(100..=199) => StatusClass::Informational,
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirect,
            Some(400..=499) => StatusClass::ClientError,
            Some(500..=599) => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    /// Its name in JSON and metric paths: `1xx` ... `5xx`, `failed`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Failed => "failed",
            StatusClass::Other => "other",
        }
    }

    /// Its position in [`ALL`](Self::ALL), for counters kept in an array.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heritrix_codes_fall_in_their_classes() {
        let cases = [
            (Some(200), "2xx"),
            (Some(304), "3xx"),
            (Some(404), "4xx"),
            (Some(503), "5xx"),
            (Some(101), "1xx"),
            (Some(-1), "failed"),
            (Some(-9998), "failed"),
            (Some(1), "other"),
            (Some(0), "other"),
            (Some(600), "other"),
            (None, "other"),
        ];
        for (code, want) in cases {
            assert_eq!(StatusClass::of(code).name(), want, "{code:?}");
        }
        for (i, c) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
