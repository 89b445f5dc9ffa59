//! [`CsrfForm`]: the body of every storefront form. The CSRF token is checked before the body
//! is read into its type, so a form without a valid token is `403 CSRF_REJECTED` whatever else
//! it holds, and changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

use super::csrf::FIELD;
use super::session::{binding, WebSettings};
use crate::error::AppError;

/// A `application/x-www-form-urlencoded` body whose CSRF token was valid.
pub struct CsrfForm<T>(pub T);

impl<T, S> FromRequest<S> for CsrfForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let settings = request.extensions().get::<Arc<WebSettings>>().cloned();
        let bound_to = binding(request.extensions(), request.headers());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.into_response().status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::MalformedRequest("The form could not be read.".into())
                }
            })?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| AppError::MalformedRequest("The form is not URL-encoded.".into()))?;
        let given = pairs.iter().find(|(k, _)| k == FIELD).map(|(_, v)| v);
        let valid = match (settings, bound_to, given) {
            (Some(settings), Some(bound_to), Some(given)) => settings.csrf.verify(&bound_to, given),
            _ => false,
        };
        if !valid {
            metrics::counter!("web_csrf_rejected_total").increment(1);
            return Err(AppError::CsrfRejected);
        }
        if !is_form {
            return Err(AppError::UnsupportedMediaType);
        }
        let value = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            AppError::MalformedRequest(format!("The form does not have the expected fields: {e}"))
        })?;
        Ok(Self(value))
    }
}
