//! The browser app, embedded in the binary and served as an axum [`Router`]: the live
//! view (every line, as it is written, from every buck, over socket.io) and the SQL
//! console (over the buck's read API); history joins when archie lands. The buck, archie
//! and `sluice up` merge this router into theirs, so no separate web server is needed.
//!
//! The live view is a bundle built by npm from `web/package.json` and its lockfile
//! (`npm ci && npm run build` writes `web/dist/`, gitignored). `build.rs` embeds
//! `web/dist/` when it exists; without it `cargo build` still works and the live view
//! page says how to build the app.
//!
//! # Layout
//!
//! - `app/`: the live view's source (`main.js` wiring, `bucks.js` connections,
//!   `merge.js` de-duplication and ordering, `view.js` the virtual list, `filter.js`).
//! - `static/console.html`: the SQL console, plain HTML and JavaScript written here.
//! - `build.rs`: embeds `dist/`; `tests/`: Node scripts the `live` crate's tests run.
//!
//! # Example
//!
//! ```
//! let app: axum::Router = web::router();
//! // Behind a reverse proxy that keeps the prefix:
//! let proxied: axum::Router = web::router_with("/sluice");
//! # let _ = (app, proxied);
//! ```
#![deny(missing_docs)]

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

mod dist {
    include!(concat!(env!("OUT_DIR"), "/dist.rs"));
}

const CONSOLE_HTML: &str = include_str!("../static/console.html");
const HISTORY_HTML: &str = include_str!("../static/history.html");
const CRAWLS_HTML: &str = include_str!("../static/crawls.html");

/// Scripts and styles of the static pages, served as files: pages carry no inline code, so
/// the Content-Security-Policy can forbid it.
const STATIC_FILES: &[(&str, &str)] = &[
    ("console.js", include_str!("../static/console.js")),
    ("console.css", include_str!("../static/console.css")),
    ("history.js", include_str!("../static/history.js")),
    ("history.css", include_str!("../static/history.css")),
    ("crawls.js", include_str!("../static/crawls.js")),
    ("crawls.css", include_str!("../static/crawls.css")),
];

async fn static_file(Path(file): Path<String>) -> Response {
    match STATIC_FILES.iter().find(|(n, _)| *n == file) {
        Some((n, body)) => (
            [
                (header::CONTENT_TYPE, content_type(n)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no such file {file}")).into_response(),
    }
}

const NOT_BUILT_HTML: &str = "<!doctype html><meta charset=utf-8><title>Sluice live: not built</title>\
<body>\
<h1>The live view is not built into this binary</h1>\
<p>Its bundle comes from npm and is embedded when the binary is compiled. From the repository root:</p>\
<pre>scripts/install-web-deps &amp;&amp; (cd web &amp;&amp; npm ci &amp;&amp; npm run build) &amp;&amp; cargo build</pre>\
<p><code>scripts/up</code> does this for you. The <a href='sql'>SQL console</a> works without it.</p>";

const FAVICON_SVG: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><path d='M1 4h14v3H1zM4 9h11v3H4z' fill='#2a6f97'/></svg>";

/// Whether the live view's bundle was embedded (false when `web/dist/` was missing at
/// compile time).
pub fn live_view_built() -> bool {
    dist_file("live.html").is_some()
}

fn dist_file(path: &str) -> Option<&'static [u8]> {
    dist::DIST.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json" | "map") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

async fn live_page() -> Response {
    match dist_file("live.html") {
        Some(b) => ([(header::CONTENT_TYPE, content_type("live.html"))], b).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Html(NOT_BUILT_HTML)).into_response(),
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    let path = format!("assets/{file}");
    match dist_file(&path) {
        Some(b) => (
            [
                (header::CONTENT_TYPE, content_type(&path)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            b,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no such asset {path}: rebuild the app (cd web && npm run build)"),
        )
            .into_response(),
    }
}

/// The web app's routes at the root: `/ui/live` (live view), `/ui/sql` (SQL console),
/// `/ui/assets/*`; `GET /` and `/ui/` redirect to the live view. Same as `router_with("")`.
pub fn router() -> Router {
    router_with("")
}

/// The web app's routes under `base` (e.g. `/sluice` behind a reverse proxy that keeps
/// the prefix; `""` for the root). Pages use relative links only, so a proxy that strips
/// the prefix works with [`router`] as is. A trailing `/` on `base` is ignored.
pub fn router_with(base: &str) -> Router {
    let base = base.trim_end_matches('/');
    let base = if base.is_empty() || base.starts_with('/') {
        base.to_owned()
    } else {
        format!("/{base}")
    };
    let live = format!("{base}/ui/live");
    let to_live = move || {
        let live = live.clone();
        async move { Redirect::temporary(&live) }
    };
    let mut r = Router::new()
        .route(&format!("{base}/"), get(to_live.clone()))
        .route(&format!("{base}/ui"), get(to_live.clone()))
        .route(&format!("{base}/ui/"), get(to_live))
        .route(&format!("{base}/ui/live"), get(live_page))
        .route(
            &format!("{base}/ui/sql"),
            get(|| async { Html(CONSOLE_HTML) }),
        )
        .route(
            &format!("{base}/ui/history"),
            get(|| async { Html(HISTORY_HTML) }),
        )
        .route(
            &format!("{base}/ui/crawls"),
            get(|| async { Html(CRAWLS_HTML) }),
        )
        .route(&format!("{base}/ui/assets/{{*file}}"), get(asset))
        .route(&format!("{base}/ui/static/{{file}}"), get(static_file))
        .route(
            &format!("{base}/ui/favicon.svg"),
            get(|| async {
                ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON_SVG).into_response()
            }),
        );
    if !base.is_empty() {
        let root = format!("{base}/ui/live");
        r = r.route(
            &base,
            get(move || async move { Redirect::temporary(&root) }),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("assets/live.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("live.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    #[test]
    fn routes_build_with_any_base() {
        // axum panics on a bad route at construction: build each form once.
        for base in ["", "/", "/sluice", "/sluice/", "sluice"] {
            let _ = router_with(base);
        }
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(app: &Router, uri: &str) -> (StatusCode, Option<String>) {
        let req = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        let loc = res
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (res.status(), loc)
    }

    #[tokio::test]
    async fn pages_redirects_and_base_path() {
        let built = if live_view_built() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let app = router();
        assert_eq!(
            get(&app, "/").await,
            (StatusCode::TEMPORARY_REDIRECT, Some("/ui/live".into()))
        );
        assert_eq!(get(&app, "/ui/").await.1.as_deref(), Some("/ui/live"));
        assert_eq!(get(&app, "/ui/live").await.0, built);
        assert_eq!(get(&app, "/ui/sql").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/ui/crawls").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/ui/static/crawls.js").await.0, StatusCode::OK);
        assert_eq!(
            get(&app, "/ui/assets/nope.js").await.0,
            StatusCode::NOT_FOUND
        );
        let app = router_with("/sluice/");
        assert_eq!(
            get(&app, "/sluice").await.1.as_deref(),
            Some("/sluice/ui/live")
        );
        assert_eq!(
            get(&app, "/sluice/").await.1.as_deref(),
            Some("/sluice/ui/live")
        );
        assert_eq!(get(&app, "/sluice/ui/live").await.0, built);
        assert_eq!(get(&app, "/sluice/ui/sql").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/ui/sql").await.0, StatusCode::NOT_FOUND);
        if live_view_built() {
            assert_eq!(
                get(&app, "/sluice/ui/assets/live.js").await.0,
                StatusCode::OK
            );
        }
    }
}
