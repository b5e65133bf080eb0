//! `Parsed`: what a parser found in one line, as spans of it; `LineParse`, the same
//! without the spans, for a caller that keeps them in a reused vector.

use contracts::{Field, FieldSpan, Format};

/// The parse of one line: spans into the line, and its own time if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The format the line was parsed as (`Plain` when the configured format did not match).
    pub format: Format,
    /// The fields found, as byte spans of the line, in the order they appear.
    pub fields: Vec<FieldSpan>,
    /// The line's own time, microseconds since the epoch, UTC; `None` when it has none.
    pub time_us: Option<i64>,
    /// Whether the source's configured format (not `auto`) failed to match.
    pub failed: bool,
}

/// What [`crate::parse_line_into`] found besides the spans, which it writes to the
/// caller's vector instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineParse {
    /// The format the line was parsed as (`Plain` when the configured format did not match).
    pub format: Format,
    /// The line's own time, microseconds since the epoch, UTC; `None` when it has none.
    pub time_us: Option<i64>,
    /// Whether the source's configured format (not `auto`) failed to match.
    pub failed: bool,
}

impl Parsed {
    /// The bytes of `field` in `line` (the line this was parsed from).
    pub fn field<'l>(&self, line: &'l [u8], field: Field) -> Option<&'l [u8]> {
        let s = self.fields.iter().find(|s| s.field == field)?;
        line.get(s.start as usize..s.start as usize + s.len as usize)
    }
}

/// A span of `[start, end)`. Callers keep lines under 4 GiB (see `parse_line`), so the
/// casts cannot wrap.
pub(crate) fn span(field: Field, start: usize, end: usize) -> FieldSpan {
    FieldSpan {
        field,
        start: start as u32,
        len: (end - start) as u32,
    }
}
