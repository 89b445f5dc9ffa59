//! Extractors whose rejections are our own [`AppError`], never axum's default texts.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::auth::token::Verified;
use crate::domain::{Role, UserId};
use crate::error::{AppError, FieldError};
use crate::state::AppState;

/// JSON body extractor: wrong content type → 415, too large → 413, bad JSON or shape → 400.
///
/// The body must be a JSON **object** (an array of the fields by position is refused), and a
/// shape error names the field and the JSON type expected, never a Rust type
/// ([`super::json_body`]).
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = match Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(AppError::PayloadTooLarge)
            }
            Err(_) => {
                return Err(AppError::MalformedRequest(
                    "The body could not be read.".into(),
                ))
            }
        };
        super::json_body::parse(&bytes)
            .map(Self)
            .map_err(AppError::MalformedRequest)
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
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

/// The authenticated caller: a verified, unrevoked bearer token (see [`super::guard`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthUser {
    /// The user the bearer token (or storefront session) was issued to.
    pub id: UserId,
    /// The role recorded in that token or session at log-in; admin checks use it.
    pub role: Role,
    /// Whether a user with this id exists (a validly signed token may name an id that does
    /// not, e.g. after a database reset); money operations refuse when it does not.
    pub exists: bool,
}

impl AuthUser {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The caller as services take it (id and role).
    pub fn caller(&self) -> crate::domain::Caller {
        crate::domain::Caller {
            id: self.id,
            role: self.role,
        }
    }

    /// Allows the owner of `owner` (or an admin); anyone else → 403.
    pub fn ensure_can_access(&self, owner: UserId) -> Result<(), AppError> {
        if self.id == owner || self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Allows callers whose account exists; otherwise `404 USER_NOT_FOUND` (money operations
    /// must not act for a user the ledger does not know).
    pub fn ensure_exists(&self) -> Result<(), AppError> {
        if self.exists {
            Ok(())
        } else {
            Err(AppError::UserNotFound)
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

    /// Verifies the signature and claims of the `Authorization: Bearer …` header (no I/O;
    /// whether the token was revoked is checked by [`super::guard::require_auth`]).
    pub fn verify_headers(headers: &axum::http::HeaderMap, state: &AppState) -> Option<Verified> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.len() > 4096 {
            return None;
        }
        // the system clock, like the `exp` check inside jsonwebtoken (the app's clock is moved
        // in tests to make orders look old; token times are about the real world)
        state
            .tokens
            .verify(token.trim(), chrono::Utc::now().timestamp())
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let _ = state;
        // only the guard puts a caller here, after checking revocation
        parts
            .extensions
            .get::<AuthUser>()
            .copied()
            .ok_or(AppError::Unauthorized)
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
