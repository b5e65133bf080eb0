//! Caps SQLite applies while a statement runs, before any row reaches the encoder.

use rusqlite::Connection;
use rusqlite::limits::Limit;

/// How big one value, and how wide one result, may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueLimits {
    /// Largest single value a query may make or read, in bytes (`SQLITE_LIMIT_LENGTH`):
    /// stops `zeroblob(1e9)` and `printf('%.*c', ..)` before they allocate.
    pub max_value_bytes: u64,
    /// Most columns a result may have (`SQLITE_LIMIT_COLUMN`).
    pub max_columns: u32,
}

impl ValueLimits {
    /// Sets both limits on `conn`. SQLite needs some room for its own work (schema
    /// text, views over many files), so tiny settings are raised to a floor.
    pub fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        let length = i32::try_from(self.max_value_bytes)
            .unwrap_or(i32::MAX)
            .max(1024);
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, length)?;
        let columns = i32::try_from(self.max_columns).unwrap_or(i32::MAX).max(64);
        conn.set_limit(Limit::SQLITE_LIMIT_COLUMN, columns)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_past_the_limit_fails_the_statement() {
        let conn = Connection::open_in_memory().expect("memory db");
        ValueLimits {
            max_value_bytes: 1 << 20,
            max_columns: 100,
        }
        .apply(&conn)
        .expect("limits");
        let small: i64 = conn
            .query_row("SELECT length(zeroblob(1000))", [], |r| r.get(0))
            .expect("a small blob");
        assert_eq!(small, 1000);
        let e = conn
            .query_row("SELECT zeroblob(67108864)", [], |r| r.get::<_, Vec<u8>>(0))
            .expect_err("a 64 MiB blob");
        assert!(e.to_string().contains("too big"), "{e}");
        let cols: Vec<String> = (0..200).map(|i| format!("{i} AS c{i}")).collect();
        let e = conn
            .prepare(&format!("SELECT {}", cols.join(",")))
            .expect_err("200 columns");
        assert!(e.to_string().contains("too many columns"), "{e}");
    }
}
