//! `max_body_bytes` for every route: a larger request body is answered 413 before any handler runs.
//!
//! `DefaultBodyLimit` alone only makes the body extractors fail, and handlers that turn any form rejection
//! into "malformed form" (400) would hide that; answering here keeps the status the same everywhere.

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::problem::Problem;

pub async fn refuse_oversized(State(max): State<usize>, request: Request, next: Next) -> Response {
    // A declared length (Content-Length, which hyper enforces) is checked without reading anything.
    if let Some(length) = request.body().size_hint().exact() {
        if length > max as u64 {
            return too_large(max);
        }
        return next.run(request).await;
    }
    // A body of unknown length (chunked) is read up to the limit, then handed on as read.
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
            .into_response();
        };
        if read.len() + chunk.len() > max {
            return too_large(max);
        }
        read.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(read))).await
}

fn too_large(max: usize) -> Response {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {max} bytes"),
    )
    .into_response()
}
