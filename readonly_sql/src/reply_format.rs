//! [`ReplyFormat`]: how a SQL reply is laid out on the wire: the trough-compatible JSON
//! array (the default), NDJSON (one object a line) or CSV (RFC 4180 with a header row),
//! so a console can offer a download of the whole result that the server streams, never
//! one the page builds.

use base64::Engine;
use rusqlite::Row;
use rusqlite::types::ValueRef;

use crate::json_rows::{RowEncoder, RowFit, encoded_size};

/// The layout of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyFormat {
    /// `[{..},{..}]`: what trough's clients read.
    #[default]
    JsonArray,
    /// One JSON object a line.
    Ndjson,
    /// A header row of column names, then one row a line (RFC 4180 quoting, CRLF).
    Csv,
}

impl ReplyFormat {
    /// From a `format=` query value: `json`, `ndjson` or `csv`; none is `json`.
    pub fn parse(v: Option<&str>) -> Result<ReplyFormat, String> {
        match v {
            None | Some("json") => Ok(ReplyFormat::JsonArray),
            Some("ndjson") => Ok(ReplyFormat::Ndjson),
            Some("csv") => Ok(ReplyFormat::Csv),
            Some(other) => Err(format!(
                "format={other:?} is not a reply format: use json (the default), ndjson or csv"
            )),
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ReplyFormat::JsonArray => "application/json",
            ReplyFormat::Ndjson => "application/x-ndjson",
            ReplyFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// What opens the reply.
    pub fn open(self, encoder: &RowEncoder, out: &mut Vec<u8>) {
        match self {
            ReplyFormat::JsonArray => out.push(b'['),
            ReplyFormat::Ndjson => {}
            ReplyFormat::Csv => {
                for (i, name) in encoder.names().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    csv_field(out, name.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Appends row number `n` (from 0), stopping past `room` bytes as
    /// [`RowEncoder::encode`] does.
    pub fn row(
        self,
        encoder: &RowEncoder,
        n: u64,
        row: &Row<'_>,
        out: &mut Vec<u8>,
        room: u64,
    ) -> RowFit {
        match self {
            ReplyFormat::JsonArray => {
                if n > 0 {
                    out.push(b',');
                }
                encoder.encode(row, out, room)
            }
            ReplyFormat::Ndjson => {
                let fit = encoder.encode(row, out, room);
                out.push(b'\n');
                fit
            }
            ReplyFormat::Csv => {
                let start = out.len();
                for i in 0..encoder.columns() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let v = row.get_ref(i).unwrap_or(ValueRef::Null);
                    if (out.len() - start) as u64 + encoded_size(v) + 2 > room {
                        return RowFit::TooBig;
                    }
                    csv_value(out, v);
                }
                out.extend_from_slice(b"\r\n");
                RowFit::Fits
            }
        }
    }

    /// A last element saying why the reply ends early (`_sluice_truncated`,
    /// `_sluice_error`): an object in JSON and NDJSON, a row of one field in CSV.
    pub fn marker(self, out: &mut Vec<u8>, rows_before: u64, key: &str, message: &str) {
        let object = serde_json::json!({ key: message }).to_string();
        match self {
            ReplyFormat::JsonArray => {
                if rows_before > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(object.as_bytes());
            }
            ReplyFormat::Ndjson => {
                out.extend_from_slice(object.as_bytes());
                out.push(b'\n');
            }
            ReplyFormat::Csv => {
                csv_field(out, format!("{key}: {message}").as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// What closes the reply.
    pub fn close(self, out: &mut Vec<u8>) {
        if self == ReplyFormat::JsonArray {
            out.push(b']');
        }
    }
}

fn csv_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => {}
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) => out.extend_from_slice(f.to_string().as_bytes()),
        ValueRef::Text(t) => csv_field(out, String::from_utf8_lossy(t).as_bytes()),
        ValueRef::Blob(b) => out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(b)
                .as_bytes(),
        ),
    }
}

/// One field, quoted when it holds a comma, a quote or a line break (quotes doubled).
fn csv_field(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &c in s {
            if c == b'"' {
                out.push(b'"');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn reply(format: ReplyFormat, sql: &str) -> String {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let enc = RowEncoder::new(stmt.column_names());
        let mut out = Vec::new();
        format.open(&enc, &mut out);
        let mut rows = stmt.query([]).unwrap();
        let mut n = 0;
        while let Some(r) = rows.next().unwrap() {
            assert_eq!(format.row(&enc, n, r, &mut out, u64::MAX), RowFit::Fits);
            n += 1;
        }
        format.marker(&mut out, n, "_sluice_truncated", "cut");
        format.close(&mut out);
        String::from_utf8(out).unwrap()
    }

    const SQL: &str =
        "SELECT 1 AS n, 'a,\"b\"' AS s, NULL AS z UNION ALL SELECT 2, 'line\nbreak', 2.5";

    #[test]
    fn each_format_lays_out_the_same_rows() {
        assert_eq!(
            reply(ReplyFormat::JsonArray, SQL),
            r#"[{"n":1,"s":"a,\"b\"","z":null},{"n":2,"s":"line\nbreak","z":2.5},{"_sluice_truncated":"cut"}]"#
        );
        assert_eq!(
            reply(ReplyFormat::Ndjson, SQL),
            "{\"n\":1,\"s\":\"a,\\\"b\\\"\",\"z\":null}\n{\"n\":2,\"s\":\"line\\nbreak\",\"z\":2.5}\n{\"_sluice_truncated\":\"cut\"}\n"
        );
        assert_eq!(
            reply(ReplyFormat::Csv, SQL),
            "n,s,z\r\n1,\"a,\"\"b\"\"\",\r\n2,\"line\nbreak\",2.5\r\n_sluice_truncated: cut\r\n"
        );
    }

    #[test]
    fn formats_are_named_in_the_query_string() {
        assert_eq!(ReplyFormat::parse(None), Ok(ReplyFormat::JsonArray));
        assert_eq!(ReplyFormat::parse(Some("csv")), Ok(ReplyFormat::Csv));
        assert!(
            ReplyFormat::parse(Some("xml"))
                .unwrap_err()
                .contains("ndjson or csv")
        );
    }
}
