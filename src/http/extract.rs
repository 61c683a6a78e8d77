//! Body extractors whose rejections are problem JSON that says what is wrong (400, 413, 415), instead of
//! axum's plain-text defaults.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::problem::Problem;

pub struct Json<T>(pub T);
pub struct Form<T>(pub T);

fn rejection(status: StatusCode, body_text: String) -> Problem {
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    Problem::new(status, body_text)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(e @ JsonRejection::MissingJsonContentType(_)) => {
                Err(rejection(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.body_text()))
            }
            Err(e) => Err(rejection(e.status(), e.body_text())),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Form(value)),
            Err(e @ FormRejection::InvalidFormContentType(_)) => {
                Err(rejection(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.body_text()))
            }
            Err(e) => Err(rejection(e.status(), e.body_text())),
        }
    }
}
