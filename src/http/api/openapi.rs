//! The OpenAPI 3.1 document of the admin API, served at `/api/v1/openapi.json`. It is generated next to
//! the handlers (`openapi.json`, by `scripts/openapi-gen.py`) and checked against the live server by the
//! fuzzer (`scripts/fuzz-admin-api.sh`, schemathesis) and by `tests/it/admin_api.rs`, so it describes what
//! is implemented.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
