//! Extractors whose rejections are our own [`AppError`], never axum's default texts.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::domain::{Role, UserId};
use crate::error::{AppError, FieldError};
use crate::state::AppState;

/// JSON body extractor: wrong content type → 415, too large → 413, bad JSON or shape → 400.
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(_) => {
            AppError::MalformedRequest("The body is not valid JSON.".into())
        }
        JsonRejection::JsonDataError(e) => AppError::MalformedRequest(format!(
            "The body does not match the expected shape: {}",
            innermost_message(&e)
        )),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        _ => AppError::MalformedRequest("The body could not be read.".into()),
    }
}

/// The message of the deepest error in a chain (serde's own words, without wrapper texts).
fn innermost_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Path parameters; a malformed id → 400 VALIDATION_FAILED.
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(AppError::Validation(
                vec![FieldError::new("path", "must be a positive integer id")],
            )),
            Err(_) => Err(AppError::RouteNotFound),
        }
    }
}

/// Query string; malformed values → 400 VALIDATION_FAILED.
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(AppError::Validation(
                vec![FieldError::new("query", innermost_message(&e))],
            )),
            Err(_) => Err(AppError::Validation(vec![FieldError::new(
                "query",
                "is malformed",
            )])),
        }
    }
}

/// The authenticated caller, from a verified bearer token (no database hit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthUser {
    /// The caller's id.
    pub id: UserId,
    /// The caller's role.
    pub role: Role,
}

impl AuthUser {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Allows the owner of `owner` (or an admin); anyone else → 403.
    pub fn ensure_can_access(&self, owner: UserId) -> Result<(), AppError> {
        if self.id == owner || self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Allows admins only.
    pub fn ensure_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Verifies the `Authorization: Bearer …` header of a request.
    pub fn from_headers(headers: &axum::http::HeaderMap, state: &AppState) -> Option<Self> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.len() > 4096 {
            return None;
        }
        let (id, role) = state.tokens.verify(token.trim())?;
        Some(Self { id, role })
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        Self::from_headers(&parts.headers, state).ok_or(AppError::Unauthorized)
    }
}

/// The optional `Idempotency-Key` header: 1–64 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        Ok(Self(Some(Self::parse("Idempotency-Key", raw.as_bytes())?)))
    }
}

impl IdempotencyKey {
    /// Checks a key (1–64 visible ASCII characters); `field` names it in the refusal.
    pub fn parse(field: &str, bytes: &[u8]) -> Result<String, AppError> {
        let valid = (1..=64).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(AppError::Validation(vec![FieldError::new(
                field,
                "must be 1-64 visible ASCII characters",
            )]));
        }
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}
