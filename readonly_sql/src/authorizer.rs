//! What a statement may do once its connection is prepared: read, recurse, call harmless
//! functions, run schema-describing pragmas. Everything else is denied, which SQLite
//! reports as "not authorized".

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Functions a query may not call, even though they read nothing: they touch files, load
/// code, or poke at internals.
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "sqlite_offset",
];

/// PRAGMAs a query may run (without a value): they only describe the schema.
/// `database_list` is left out on purpose: it would show the server's file paths.
const ALLOWED_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    // FTS5 reads it before each query of an FTS table.
    "data_version",
];

/// The authorizer callback: allow reads, deny the rest.
pub fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } if ALLOWED_PRAGMAS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
        {
            // `table_info(events)` passes the table as the value; `data_version` is
            // read-only; none of these has an assignment form.
            let _ = pragma_value;
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }
}

/// Installs [`authorize`] on `conn`. Call it last: after it, the connection can no
/// longer attach or create anything.
pub fn install_authorizer(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.authorizer(Some(authorize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared() -> Connection {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1), (2);")
            .expect("schema");
        install_authorizer(&mut conn).expect("authorizer");
        conn
    }

    #[test]
    fn reads_pass_and_writes_do_not() {
        let conn = prepared();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("a read");
        assert_eq!(n, 2);
        for refused in [
            "INSERT INTO t VALUES (3)",
            "DELETE FROM t",
            "ATTACH DATABASE ':memory:' AS x",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA database_list",
            "SELECT load_extension('x')",
            "CREATE TABLE u(b)",
        ] {
            let e = conn.execute_batch(refused).expect_err(refused);
            assert!(e.to_string().contains("not authorized"), "{refused}: {e}");
        }
        let still: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("a read");
        assert_eq!(still, 2);
        conn.prepare("PRAGMA table_info(t)")
            .expect("schema pragmas are allowed");
    }
}
