//! The read API's optional token (`api_token` in the config): SQL and `GET /subscribe`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_state::ApiState;

/// Lets a request through when no token is configured, or when it carries the token as
/// `Authorization: Bearer <token>`; otherwise 401 saying how to send it. A token in the
/// URL is not accepted: URLs end up in logs, history and `Referer` headers.
pub(crate) async fn require(
    State(api): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(want) = api.config.api_token.as_deref() else {
        return next.run(req).await;
    };
    if edge::bearer::carries(req.headers(), want) {
        return next.run(req).await;
    }
    api.events.api_refused();
    let why = if edge::bearer::presented(req.headers()).is_some() {
        "wrong token"
    } else {
        "no token"
    };
    tracing::warn!(method = %req.method(), path = %req.uri().path(), "read API request refused: {why}");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this buck's read API (SQL, /subscribe) needs a token: send `Authorization: Bearer <token>` (never in the URL, where proxies and browser history keep it)\n",
    )
        .into_response()
}
