//! Read-only SQL over one index (`POST /history/{id}/sql`).
//!
//! Safety comes from SQLite, not from looking at the text: the connection is opened
//! read-only, the shards are attached before an authorizer is installed that allows only
//! reads, selects, functions (not `load_extension`) and a few read-only pragmas, a
//! progress handler interrupts a statement past its time limit, and rows stop at the row
//! limit. The body must be exactly one statement.

use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use crate::error::ArchieError;
use crate::index_files::IndexFiles;

/// Pragmas that only read, allowed without a value.
const READ_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "database_list",
    "foreign_key_list",
    // FTS5 reads it before each query of an FTS table.
    "data_version",
];

/// The answer to one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlReply {
    /// The rows, as objects keyed by column name.
    pub rows: Vec<Value>,
    /// Whether the row limit cut the answer.
    pub truncated: bool,
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if function_name.eq_ignore_ascii_case("load_extension") {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            // `table_info(events)` passes the table as the value; these pragmas have no
            // assignment form, so a value cannot make them write.
            let _ = pragma_value;
            if READ_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name))
            {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        _ => Authorization::Deny,
    }
}

/// Runs one read-only statement over `files`, within `time_limit` and `row_limit`.
pub fn run_sql(
    files: &IndexFiles,
    sql: &str,
    time_limit: Duration,
    row_limit: usize,
) -> Result<SqlReply, ArchieError> {
    let mut conn = files.open_reader()?;
    conn.authorizer(Some(authorize))
        .map_err(|e| ArchieError::Internal(format!("installing the sql authorizer: {e}")))?;
    let deadline = Instant::now() + time_limit;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline))
        .map_err(|e| ArchieError::Internal(format!("installing the sql time limit: {e}")))?;
    let refused = |e: rusqlite::Error| {
        let text = e.to_string();
        if text.contains("interrupted") {
            ArchieError::Sql(format!(
                "sql stopped at its time limit of {} s; narrow the query",
                time_limit.as_secs()
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
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([]).map_err(refused)?;
    let mut out = Vec::new();
    let mut truncated = false;
    while let Some(r) = rows.next().map_err(refused)? {
        if out.len() >= row_limit {
            truncated = true;
            break;
        }
        let mut obj = Map::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let v = match r.get_ref(i).map_err(refused)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(f) => Value::from(f),
                ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => {
                    Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                }
            };
            obj.insert(name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(SqlReply {
        rows: out,
        truncated,
    })
}
