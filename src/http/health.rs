//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// The process is up and answering.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve: the database answers. Redis, when configured, is checked and reported, but an
/// unreachable Redis only makes the instance `degraded` (still 200): instances keep serving with local
/// limits, and a 503 here would make a load balancer drain every instance at once.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = match tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.services.store.ping(),
    )
    .await
    {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            "unreachable"
        }
        Err(_) => "timeout",
    };
    let redis = match &state.services.config.redis_url {
        None => "not_configured",
        Some(_) => match state.services.ephemeral.ping().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "readiness: redis check failed");
                "unreachable"
            }
        },
    };
    let ready = database == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let summary = match (ready, redis) {
        (false, _) => "not_ready",
        (true, "unreachable") => "degraded",
        (true, _) => "ready",
    };
    let body = json!({
        "status": summary,
        "checks": { "database": database, "database_backend": state.services.store.backend(), "redis": redis },
    });
    (status, Json(body))
}
