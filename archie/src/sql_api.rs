//! Read-only SQL over one index (`POST /history/{id}/sql`).
//!
//! The walls are the buck's, from `readonly_sql`: the connection is opened read-only, the
//! shards are attached, value and column limits are set, and then an authorizer is
//! installed that allows only reads. A progress handler interrupts a statement past its
//! time limit, and rows stop at the row and byte limits. The body must be exactly one
//! statement.
//!
//! The reply is copied out in full (it is at most `sql_max_bytes`) before anything is
//! sent, so a client that reads slowly holds no read transaction.

use std::time::{Duration, Instant};

use readonly_sql::{RowEncoder, RowFit, ValueLimits, install_authorizer, sqlite_message};

use crate::error::ArchieError;
use crate::index_files::IndexFiles;

/// A row may hold at most this many `sql_max_value_bytes` in all: SQLite keeps every
/// value of the row expanded while it is encoded.
const MAX_ROW_VALUES: u64 = 4;

/// What one statement may take.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Time limit (`sql_time_limit_secs`).
    pub time_limit: Duration,
    /// Rows in a reply (`sql_row_limit`).
    pub max_rows: usize,
    /// Bytes of JSON in a reply (`sql_max_bytes`).
    pub max_bytes: u64,
    /// One value and one result's width (`sql_max_value_bytes`, `sql_max_columns`).
    pub values: ValueLimits,
}

/// The answer to one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlReply {
    /// The rows, as a JSON array of objects keyed by column name.
    pub json: Vec<u8>,
    /// How many rows `json` holds.
    pub rows: usize,
    /// Whether the row or byte limit cut the answer.
    pub truncated: bool,
}

/// Runs one read-only statement over `files` within `limits`.
pub fn run_sql(files: &IndexFiles, sql: &str, limits: &SqlLimits) -> Result<SqlReply, ArchieError> {
    let mut conn = files.open_reader()?;
    limits
        .values
        .apply(&conn)
        .map_err(|e| ArchieError::Internal(format!("setting the sql value limits: {e}")))?;
    install_authorizer(&mut conn)
        .map_err(|e| ArchieError::Internal(format!("installing the sql authorizer: {e}")))?;
    let deadline = Instant::now() + limits.time_limit;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline))
        .map_err(|e| ArchieError::Internal(format!("installing the sql time limit: {e}")))?;
    let refused = |e: rusqlite::Error| {
        let text = sqlite_message(&e);
        if text.contains("interrupted") {
            ArchieError::Sql(format!(
                "sql stopped at its time limit of {} s (sql_time_limit_secs); narrow the query",
                limits.time_limit.as_secs()
            ))
        } else if text.contains("not authorized") {
            ArchieError::Sql(format!(
                "sql refused: {text}; only reads are allowed (SELECT, read-only pragmas)"
            ))
        } else {
            ArchieError::Sql(format!("sql failed: {text}"))
        }
    };
    let mut stmt = conn.prepare(sql.trim()).map_err(refused)?;
    if !stmt.readonly() {
        return Err(ArchieError::Sql(
            "sql refused: the statement writes; only reads are allowed".into(),
        ));
    }
    let encoder = RowEncoder::new(stmt.column_names());
    let mut rows = stmt.query([]).map_err(refused)?;
    let mut out = Vec::with_capacity(4096);
    out.push(b'[');
    let mut n = 0;
    let mut truncated = false;
    let row_cap = limits.values.max_value_bytes.saturating_mul(MAX_ROW_VALUES);
    let mut row_buf = Vec::new();
    while let Some(r) = rows.next().map_err(refused)? {
        if n >= limits.max_rows {
            truncated = true;
            break;
        }
        row_buf.clear();
        if n > 0 {
            row_buf.push(b',');
        }
        // One byte is kept for the closing `]`.
        let room = limits
            .max_bytes
            .saturating_sub(out.len() as u64 + 1)
            .min(row_cap);
        if encoder.encode(r, &mut row_buf, room) == RowFit::TooBig {
            if n == 0 || row_buf.len() as u64 >= limits.values.max_value_bytes {
                return Err(ArchieError::TooLarge(format!(
                    "a row is larger than a reply may hold ({} bytes, sql_max_bytes) or than {MAX_ROW_VALUES} times sql_max_value_bytes ({} bytes): select fewer or smaller columns",
                    limits.max_bytes, limits.values.max_value_bytes
                )));
            }
            truncated = true;
            break;
        }
        out.extend_from_slice(&row_buf);
        n += 1;
    }
    out.push(b']');
    Ok(SqlReply {
        json: out,
        rows: n,
        truncated,
    })
}
