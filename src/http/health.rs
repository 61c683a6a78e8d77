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

/// Ready to serve: the database answers, and Redis too when one is configured.
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
    let ready = database == "ok" && matches!(redis, "ok" | "not_configured");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database, "database_backend": state.services.store.backend(), "redis": redis },
    });
    (status, Json(body))
}
