//! `/healthz`, `/readyz` and `/metrics` beside the loop.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// Liveness: the loop made progress (a backend call, a step, an idle tick) within [`super::STALL_BOUND`].
async fn healthz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.alive() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        let since = shared.since_progress().as_secs();
        let bound = super::STALL_BOUND.as_secs();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the reconcile loop is stuck: no progress for {since}s (bound {bound}s)\n"),
        )
    }
}

/// Readiness: the last observe pass succeeded and the manifests are valid; otherwise 503 with the reasons.
async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let (ready, body) = shared.readiness();
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], shared.metrics.encode())
}
