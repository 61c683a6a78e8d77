//! `Idempotency-Key` on the admin API's creates (POST): the first request with a key runs; a retry with
//! the same key and the same request gets the first answer again (status and body) instead of creating
//! twice; the same key with a different request is refused (422), and one still running answers 409.
//! Answers are stored sealed under the master key (a create may return a secret shown once) and kept a
//! day. Keys are per caller (the staff member or API key, authenticated before anything is replayed) and
//! per path.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::AppState;
use crate::http::error::Kind;
use crate::http::problem::ApiError;
use crate::storage::idempotency::Claim;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY).cloned() else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_string()
        }
        _ => {
            return ApiError::new(
                Kind::BadRequest,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response();
        }
    };
    // Authenticate first (with the CSRF check for a staff session): a stored answer may hold a secret,
    // and it is replayed only to the caller that made it, while that caller is still signed in.
    let (mut parts, body) = request.into_parts();
    let caller = match super::Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let limit = state.deps.config().max_body_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError::new(Kind::BadRequest, "the request body could not be read")
            .into_response();
    };
    let principal = caller.principal.id().into_bytes();
    let scope = parts.uri.path().to_string();
    let request_hash =
        Sha256::digest([parts.method.as_str().as_bytes(), b"\n", &bytes].concat()).to_vec();
    let db = state.deps.db();
    let claim = db
        .claim_idempotency(&scope, &principal, &key, &request_hash, state.deps.now())
        .await;
    let record_id = format!("idempotency:{scope}:{key}");
    if let Some(answer) = earlier_answer(&state, claim, &record_id) {
        return answer;
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    let (head, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let outcome = status
        .is_success()
        .then(|| state.deps.secrets().seal(&record_id, &body));
    let stored = outcome
        .as_deref()
        .map(|sealed| (status.as_u16() as i64, sealed));
    if let Err(e) = db
        .finish_idempotency(&scope, &principal, &key, stored)
        .await
    {
        tracing::warn!(error = %e, "idempotency record not stored");
    }
    Response::from_parts(head, Body::from(body))
}

fn replay(status: i64, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    let mut response = (status, Bytes::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The answer for a key seen before (a replay, or why not), or `None` for a new claim.
fn earlier_answer(
    state: &AppState,
    claim: Result<Claim, crate::storage::StoreError>,
    record_id: &str,
) -> Option<Response> {
    let refused = |kind, detail: &str| Some(ApiError::new(kind, detail).into_response());
    match claim {
        Err(e) => Some(ApiError::from(crate::error::Error::from(e)).into_response()),
        Ok(Claim::Mismatch) => refused(
            Kind::Unprocessable,
            "this Idempotency-Key was used for a different request",
        ),
        Ok(Claim::InProgress) => refused(
            Kind::Conflict,
            "a request with this Idempotency-Key is still running",
        ),
        Ok(Claim::Replay(status, sealed)) => match state.deps.secrets().open(record_id, &sealed) {
            Ok(body) => Some(replay(status, body)),
            Err(_) => refused(Kind::Fault, "an internal error occurred"),
        },
        Ok(Claim::New) => None,
    }
}
