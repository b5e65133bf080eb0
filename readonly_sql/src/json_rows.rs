//! Rows as JSON objects, counted value by value: a row is never built past the room left
//! in a reply (six 64 MiB blobs once made 783 MiB of JSON before a limit was checked).

use base64::Engine;
use rusqlite::Row;
use rusqlite::types::ValueRef;

/// Whether a row fit in the room it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFit {
    /// The whole row was written.
    Fits,
    /// A value would have passed the room; what was written is incomplete and must be
    /// thrown away.
    TooBig,
}

/// Encodes rows of one statement as `{"column": value, ..}`.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    /// Each column's `"name":`, encoded once.
    keys: Vec<Vec<u8>>,
    /// The column names as the statement gave them.
    names: Vec<String>,
}

impl RowEncoder {
    /// An encoder for a statement with these column names.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> RowEncoder {
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        let keys = names
            .iter()
            .map(|name| {
                let mut k = serde_json::to_vec(name).unwrap_or_else(|_| b"\"?\"".to_vec());
                k.push(b':');
                k
            })
            .collect();
        RowEncoder { keys, names }
    }

    /// The column names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// How many columns a row has.
    pub fn columns(&self) -> usize {
        self.names.len()
    }

    /// Appends `row` as one JSON object to `out`, stopping as soon as the object would
    /// pass `room` bytes (counted from where it starts in `out`).
    pub fn encode(&self, row: &Row<'_>, out: &mut Vec<u8>, room: u64) -> RowFit {
        let start = out.len();
        out.push(b'{');
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k);
            let v = row.get_ref(i).unwrap_or(ValueRef::Null);
            if (out.len() - start) as u64 + encoded_size(v) + 1 > room {
                return RowFit::TooBig;
            }
            write_value(out, v);
        }
        out.push(b'}');
        RowFit::Fits
    }
}

/// The bytes a value takes in JSON, at least: what decides whether it still fits.
pub fn encoded_size(v: ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Null | ValueRef::Integer(_) | ValueRef::Real(_) => 24,
        ValueRef::Text(t) => t.len() as u64 + 2,
        ValueRef::Blob(b) => (b.len() as u64).div_ceil(3) * 4 + 2,
    }
}

/// Writes one value as JSON. Text that is not UTF-8 is made valid (U+FFFD); blobs travel
/// as base64 strings, as JSON has no bytes.
pub fn write_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.extend_from_slice(b"null"),
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) => match serde_json::Number::from_f64(f) {
            Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
            None => out.extend_from_slice(b"null"),
        },
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            let _ = serde_json::to_writer(&mut *out, &*s);
        }
        ValueRef::Blob(b) => {
            let s = base64::engine::general_purpose::STANDARD.encode(b);
            let _ = serde_json::to_writer(&mut *out, &s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn encode_one(sql: &str, room: u64) -> (RowFit, Vec<u8>) {
        let conn = Connection::open_in_memory().expect("memory db");
        let mut stmt = conn.prepare(sql).expect("statement");
        let enc = RowEncoder::new(stmt.column_names());
        let mut rows = stmt.query([]).expect("query");
        let row = rows.next().expect("step").expect("a row");
        let mut out = Vec::new();
        let fit = enc.encode(row, &mut out, room);
        (fit, out)
    }

    #[test]
    fn a_row_is_valid_json_with_every_kind_of_value() {
        let (fit, out) = encode_one(
            "SELECT 1 AS i, 2.5 AS r, 'a\"b' AS t, x'00ff' AS b, NULL AS n, CAST(x'c328' AS TEXT) AS bad",
            1 << 20,
        );
        assert_eq!(fit, RowFit::Fits);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["i"], 1);
        assert_eq!(v["r"], 2.5);
        assert_eq!(v["t"], "a\"b");
        assert_eq!(v["b"], "AP8=");
        assert!(v["n"].is_null());
        assert_eq!(v["bad"], "\u{fffd}(");
    }

    #[test]
    fn a_value_past_the_room_is_not_written() {
        let (fit, out) = encode_one("SELECT 'x' AS a, zeroblob(100000) AS big", 1000);
        assert_eq!(fit, RowFit::TooBig);
        assert!(
            out.len() < 1000,
            "the big value was not written: {} bytes",
            out.len()
        );
    }
}
