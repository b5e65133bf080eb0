//! `BrowserGuard`: what a browser may do with a server agent's HTTP port.
//!
//! A page on any web site can make the visitor's browser send requests to a buck on the
//! same network, or, by DNS rebinding (its own name resolving to 127.0.0.1), to a
//! `sluice up` on the visitor's loopback. The guard runs before every route, socket.io
//! included:
//!
//! - `Host` must name this server: an IP literal, `localhost`, the host of one of the
//!   cluster's `http_url`s, or one of `allowed_hosts`. A rebinding page's requests carry
//!   its own name and are refused.
//! - `Origin`, when a browser sends one, must be this server's own origin, one of the
//!   cluster's bucks (the live view connects from one buck's page to all of them), or one
//!   of `allowed_origins`. Only those get CORS headers.
//! - Every response carries a Content-Security-Policy (scripts, styles and frames from
//!   this server only; connections to the cluster's bucks), `X-Content-Type-Options:
//!   nosniff` and `X-Frame-Options: DENY`.
//!
//! Refusals are 403 with a body naming the setting that would allow the request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The origins of the cluster's bucks (`scheme://host[:port]`), read when needed: the
/// cluster file changes while agents run.
pub type ClusterOrigins = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The policy and its refusal counter.
pub struct BrowserGuard {
    cluster_origins: ClusterOrigins,
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
    refused: AtomicU64,
}

impl BrowserGuard {
    /// A guard allowing the cluster's origins plus `allowed_origins` (origins such as
    /// `https://sluice.example.org`) and `allowed_hosts` (names this server is reached by
    /// that are not in the cluster file, e.g. a reverse proxy's).
    pub fn new(
        cluster_origins: ClusterOrigins,
        allowed_origins: Vec<String>,
        allowed_hosts: Vec<String>,
    ) -> Arc<BrowserGuard> {
        Arc::new(BrowserGuard {
            cluster_origins,
            allowed_origins: allowed_origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts: allowed_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            refused: AtomicU64::new(0),
        })
    }

    /// Requests refused so far (Host or Origin).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Prometheus text for the refusal counter, under `prefix` (e.g. `sluice_http`).
    pub fn render_prometheus(&self, prefix: &str, out: &mut String) {
        metric_text::Exposition::new(out, prefix).counter(
            "browser_refused_total",
            "requests refused for a foreign Host (DNS rebinding) or Origin",
            self.refused(),
        );
    }

    fn origins(&self) -> Vec<String> {
        let mut all: Vec<String> = (self.cluster_origins)()
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        all.extend(self.allowed_origins.iter().cloned());
        all
    }

    fn host_allowed(&self, host: &str, origins: &[String]) -> bool {
        let name = host_name(host);
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || self.allowed_hosts.iter().any(|h| h == &name || h == host)
            || origins
                .iter()
                .any(|o| origin_host(o).is_some_and(|h| host_name(&h) == name))
    }

    fn refuse(&self, why: String) -> Response {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("browser request refused: {why}");
        let mut r = (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
        add_security_headers(r.headers_mut(), &[]);
        r
    }
}

/// The host part of a `Host` header value, lower case, without port or IPv6 brackets.
fn host_name(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_owned();
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_owned(),
        _ => h,
    }
}

/// `host[:port]` of an origin or URL (`http://a.b:8080/x` -> `a.b:8080`).
fn origin_host(origin: &str) -> Option<String> {
    let rest = origin.split_once("://")?.1;
    Some(rest.split('/').next()?.to_ascii_lowercase())
}

/// The origin (`scheme://host[:port]`) of a URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then(|| {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    })
}

fn add_security_headers(h: &mut HeaderMap, connect: &[String]) {
    let mut connect_src = String::from("'self'");
    for o in connect {
        connect_src.push(' ');
        connect_src.push_str(o);
        // socket.io upgrades to a websocket on the same host.
        if let Some(rest) = o.strip_prefix("http://") {
            connect_src.push_str(&format!(" ws://{rest}"));
        } else if let Some(rest) = o.strip_prefix("https://") {
            connect_src.push_str(&format!(" wss://{rest}"));
        }
    }
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src {connect_src}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, edge::browser_guard::check)`.
pub async fn check(State(guard): State<Arc<BrowserGuard>>, req: Request, next: Next) -> Response {
    let origins = guard.origins();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let Some(host) = &host
        && !guard.host_allowed(host, &origins)
    {
        return guard.refuse(format!(
            "Host {host:?} is not a name of this server (a page may be rebinding its own name to this address); if you reach it by that name, add it to allowed_hosts"
        ));
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(|o| o.trim_end_matches('/').to_ascii_lowercase());
    let cross = match (&origin, &host) {
        (None, _) => None,
        (Some(o), Some(h))
            if origin_host(o).as_deref() == Some(h.to_ascii_lowercase().as_str()) =>
        {
            None
        }
        (Some(o), _) if origins.iter().any(|a| a == o) => Some(o.clone()),
        (Some(o), _) => {
            return guard.refuse(format!(
                "a page from {o} may not use this server; if it should, add its origin to allowed_origins"
            ));
        }
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight && cross.is_some() {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Some(o) = cross
        && let Ok(v) = HeaderValue::from_str(&o)
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    add_security_headers(h, &origins);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> (Router, Arc<BrowserGuard>) {
        let guard = BrowserGuard::new(
            Arc::new(|| vec!["http://buck-b.example:8080".to_owned()]),
            vec!["https://ops.example.org".into()],
            vec!["proxy.example.org".into()],
        );
        let r = Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(guard.clone(), check));
        (r, guard)
    }

    async fn call(app: &Router, host: &str, origin: Option<&str>) -> Response {
        let mut b = Request::builder().uri("/x").header(header::HOST, host);
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        app.clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn hosts_and_origins() {
        let (app, guard) = app();
        for host in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost:8080",
            "buck-b.example:8080",
            "proxy.example.org",
        ] {
            assert_eq!(call(&app, host, None).await.status(), 200, "{host}");
        }
        let rebinding = call(&app, "evil.example:8080", None).await;
        assert_eq!(rebinding.status(), 403);
        // Same origin, a cluster buck's, a configured one: allowed, CORS only cross-origin.
        let same = call(&app, "127.0.0.1:8080", Some("http://127.0.0.1:8080")).await;
        assert_eq!(same.status(), 200);
        assert!(
            !same
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        let peer = call(&app, "127.0.0.1:8080", Some("http://buck-b.example:8080")).await;
        assert_eq!(peer.status(), 200);
        assert_eq!(
            peer.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://buck-b.example:8080"
        );
        assert_eq!(
            call(&app, "127.0.0.1:8080", Some("https://ops.example.org"))
                .await
                .status(),
            200
        );
        let foreign = call(&app, "127.0.0.1:8080", Some("http://evil.example")).await;
        assert_eq!(foreign.status(), 403);
        assert_eq!(
            call(&app, "127.0.0.1:8080", Some("null")).await.status(),
            403
        );
        assert_eq!(guard.refused(), 3);
        // Every answer carries the page policy, refusals included.
        let csp = peer.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("ws://buck-b.example:8080"),
            "{csp}"
        );
        assert_eq!(foreign.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
