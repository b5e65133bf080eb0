//! The SQL API's optional token (`api_token` in the config).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_state::ApiState;

/// Lets a request through when no token is configured, or when it carries the token as
/// `Authorization: Bearer <token>` or `?token=<token>`; otherwise 401 saying how to send it.
pub(crate) async fn require(
    State(api): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(want) = api.config.api_token.as_deref() else {
        return next.run(req).await;
    };
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    if edge::bearer::carries(req.headers(), want)
        || query.is_some_and(|t| edge::bearer::constant_time_eq(t.as_bytes(), want.as_bytes()))
    {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this buck's SQL API needs a token: send `Authorization: Bearer <token>` or `?token=<token>`\n",
    )
        .into_response()
}
