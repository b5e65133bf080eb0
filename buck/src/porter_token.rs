//! The segment API's credential (`porter_token` in the config): only porters list,
//! copy and mark segments archived, since an `archived` receipt lets the buck prune.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_state::ApiState;

/// Lets a request through only with `Authorization: Bearer <porter_token>`; with no
/// `porter_token` configured, the segment API is closed. Refusals are 401, counted and
/// logged.
pub(crate) async fn require(
    State(api): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    check(api, req, next, false).await
}

/// For the listing (`GET /segments`) alone: the porter's credential, or the API token
/// when one is configured. The listing says what the SQL API can read anyway (crawls,
/// days, row counts, times, archived or not), and monitoring (`sluice check archive`)
/// should not need the credential that lets a buck prune. Copies and receipts stay the
/// porter's.
pub(crate) async fn require_for_listing(
    State(api): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    check(api, req, next, true).await
}

async fn check(api: Arc<ApiState>, req: Request, next: Next, listing: bool) -> Response {
    if listing
        && let Some(api_token) = api.config.api_token.as_deref()
        && edge::bearer::carries(req.headers(), api_token)
    {
        return next.run(req).await;
    }
    let why = match api.config.porter_token.as_deref() {
        Some(want) if edge::bearer::carries(req.headers(), want) => {
            return next.run(req).await;
        }
        Some(_) if edge::bearer::presented(req.headers()).is_some() => "wrong porter token",
        Some(_) => "no porter token",
        None => "the segment API is closed (no porter_token configured)",
    };
    api.events.porter_refused();
    tracing::warn!(
        method = %req.method(),
        path = %req.uri().path(),
        "segment API request refused: {why}"
    );
    let body = if api.config.porter_token.is_some() {
        "the segment API is for porters: send `Authorization: Bearer <token>` with the buck's porter_token (the porter's buck_token)\n"
    } else {
        "the segment API is closed on this buck: set porter_token in its config and the same value as buck_token in each porter's config\n"
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        body,
    )
        .into_response()
}
