//! Liveness and readiness.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// How long a write probe's outcome is reused: a load balancer polling `/readyz` many times a second
/// costs at most one small committed write a second.
const WRITE_PROBE_TTL: Duration = Duration::from_secs(1);
/// How long one database check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The last write probe. The lock is held while probing, so concurrent `/readyz` calls share one probe.
#[derive(Default)]
pub struct WriteProbe {
    last: tokio::sync::Mutex<Option<(Instant, &'static str)>>,
}

impl WriteProbe {
    /// `ok`, `failing` or `timeout`: whether the database took a committed write within the last second.
    async fn check(&self, store: &crate::storage::Db) -> &'static str {
        let mut last = self.last.lock().await;
        if let Some((at, outcome)) = *last
            && at.elapsed() < WRITE_PROBE_TTL
        {
            return outcome;
        }
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, store.probe_write()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database write check failed");
                "failing"
            }
            Err(_) => "timeout",
        };
        *last = Some((Instant::now(), outcome));
        outcome
    }
}

/// The process is up and answering.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Whether the database answers within the check's time.
async fn database_check(store: &crate::storage::Db) -> &'static str {
    match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            "unreachable"
        }
        Err(_) => "timeout",
    }
}

/// Whether Redis answers, when one is configured.
async fn redis_check(state: &AppState) -> &'static str {
    if state.deps.config().redis_url.is_none() {
        return "not_configured";
    }
    match state.deps.ephemeral().ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: redis check failed");
            "unreachable"
        }
    }
}

/// Ready to serve: the database answers reads and commits writes (a full disk or a read-only database
/// makes the instance unready, not only an unreachable one), and the revoked access tokens are loaded.
/// Redis, when configured, is checked and reported, but an unreachable Redis only makes the instance
/// `degraded` (still 200): instances keep serving with local limits, and a 503 here would make a load
/// balancer drain every instance at once.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.deps.db();
    let database = database_check(store).await;
    let writes = if database == "ok" {
        state.write_probe.check(store).await
    } else {
        "not_checked"
    };
    let revocations = if state.provider.revocations_loaded() {
        "loaded"
    } else {
        "not_loaded"
    };
    let redis = redis_check(&state).await;
    let ready = database == "ok" && writes == "ok" && revocations == "loaded";
    let summary = match (ready, redis) {
        (false, _) => "not_ready",
        (true, "unreachable") => "degraded",
        (true, _) => "ready",
    };
    let body = json!({
        "status": summary,
        "checks": {
            "database": database,
            "database_writes": writes,
            "database_backend": state.deps.db().backend(),
            "revoked_tokens": revocations,
            "redis": redis,
        },
    });
    let mut response = Json(body).into_response();
    if !ready {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}
