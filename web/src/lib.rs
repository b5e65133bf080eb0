//! The browser app, embedded in the binary and served as an axum [`Router`]: the SQL
//! console (over the buck's read API) now, the live view and history pages as their
//! agents land. The buck, archie and `sluice up` merge this router into theirs, so no
//! separate web server is needed.
//!
//! # Layout
//!
//! - `static/console.html`: the SQL console, plain HTML and JavaScript written here.
//!
//! # Example
//!
//! ```
//! let app: axum::Router = web::router();
//! ```
#![deny(missing_docs)]

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;

const CONSOLE_HTML: &str = include_str!("../static/console.html");

/// The web app's routes: `/ui/` (the app), `/ui/sql` (SQL console); `GET /` redirects to the app.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("ui/sql") }))
        .route("/ui", get(|| async { Redirect::temporary("ui/sql") }))
        .route("/ui/", get(|| async { Redirect::temporary("sql") }))
        .route("/ui/sql", get(|| async { Html(CONSOLE_HTML) }))
        .route(
            "/ui/favicon.svg",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/svg+xml")],
                    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><path d='M1 4h14v3H1zM4 9h11v3H4z' fill='#2a6f97'/></svg>",
                )
                    .into_response()
            }),
        )
}
