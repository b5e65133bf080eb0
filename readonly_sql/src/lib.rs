//! The rules every SQL endpoint of Sluice shares (the buck's read API, archie's
//! `POST /history/{id}/sql`), so a query from the network meets the same walls wherever it
//! lands.
//!
//! Safety comes from SQLite itself, not from looking at the SQL text: a connection is
//! prepared (files attached, views made), then [`ValueLimits::apply`] caps what one value
//! and one result may grow to, and [`authorize`] is installed so the statement can only
//! read. Rows are then turned into JSON by a [`RowEncoder`], which counts bytes value by
//! value so a reply is never built past its limit.

#![deny(missing_docs)]

mod authorizer;
mod json_rows;
mod reply_format;
mod value_limits;

pub use authorizer::{authorize, install_authorizer};
pub use json_rows::{RowEncoder, RowFit, encoded_size, write_value};
pub use reply_format::ReplyFormat;
pub use value_limits::ValueLimits;

/// SQLite's own message for an error, without rusqlite's wrapping: what a user is shown.
pub fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqlInputError { msg, offset, .. } => format!("{msg} (at byte {offset})"),
        rusqlite::Error::MultipleStatement => {
            "only one SQL statement per request: remove what follows the first ';'".into()
        }
        other => other.to_string(),
    }
}
