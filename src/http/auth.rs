//! `POST /api/v1/auth/signup` and `POST /api/v1/auth/login`.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client_ip::ClientIp;
use super::extract::{AppJson, AuthUser};
use crate::domain::Role;
use crate::error::AppError;
use crate::service::{login, session, signup};
use crate::state::AppState;

/// Sign-up body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignUpRequest {
    /// E-mail address (unique).
    pub email: String,
    /// 8–128 characters.
    pub password: String,
    /// Display name, 1–100 characters.
    pub name: String,
}

/// Sign-up answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignUpResponse {
    /// The new user's id.
    pub user_id: i64,
}

/// Login body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginRequest {
    /// The account's e-mail address, as given at sign-up; case of ASCII letters and surrounding
    /// spaces are ignored.
    pub email: String,
    /// The account's password; a wrong one gets the same `401` as an unknown e-mail.
    pub password: String,
}

/// Login answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Bearer token for the `Authorization` header.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// The user's id.
    pub user_id: i64,
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth",
    request_body = SignUpRequest,
    responses((status = 201, body = SignUpResponse), (status = 400), (status = 409)))]
pub async fn sign_up(
    State(state): State<AppState>,
    AppJson(body): AppJson<SignUpRequest>,
) -> Result<(StatusCode, Json<SignUpResponse>), AppError> {
    let request = signup::SignUp::parse(&body.email, &body.password, &body.name)?;
    let user_id = signup::sign_up(&state, request, Role::User).await?;
    Ok((
        StatusCode::CREATED,
        Json(SignUpResponse { user_id: user_id.0 }),
    ))
}

/// Exchanges e-mail and password for an access token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401)))]
pub async fn log_in(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Json<LoginResponse>, AppError> {
    if body.password.len() > 1024 {
        return Err(AppError::InvalidCredentials);
    }
    let client = client.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ClientIp(ip))| ip,
    );
    let done = login::log_in(&state, &body.email, &body.password, client).await?;
    Ok(Json(LoginResponse {
        access_token: done.token.token,
        token_type: "Bearer",
        expires_in: done.token.expires_in,
        user_id: done.user_id.0,
    }))
}

/// Ends every session of the caller: every token of this user issued so far is refused from
/// now on, on every instance (log in again for a new one).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401), (status = 404)))]
pub async fn log_out(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<StatusCode, AppError> {
    user.ensure_exists()?;
    session::log_out(&state, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
