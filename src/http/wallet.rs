//! `GET /api/v1/users/{userId}/balance` and `POST /api/v1/users/{userId}/balance/charge`.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{AppJson, AppPath, AuthUser, IdempotencyKey};
use crate::domain::UserId;
use crate::error::AppError;
use crate::service::wallet;
use crate::state::AppState;

/// Balance answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    /// The user.
    pub user_id: i64,
    /// Won available.
    pub balance: i64,
}

/// Charge body. `amount` is taken as raw JSON so that a float or a string is reported as
/// `INVALID_AMOUNT` rather than a generic shape error.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// Won to add: an integer from 1 to 10,000,000.
    #[schema(value_type = i64, minimum = 1, maximum = 10_000_000)]
    pub amount: Option<Value>,
}

/// Charge answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeView {
    /// The user.
    pub user_id: i64,
    /// Balance after the charge.
    pub balance: i64,
    /// Won added.
    pub charged_amount: i64,
}

/// Reads a balance (yours, or anyone's for admins).
#[utoipa::path(get, path = "/api/v1/users/{userId}/balance", tag = "wallet",
    params(("userId" = i64, Path, minimum = 1, maximum = 4294967295.0, description = "User id")), security(("bearer" = [])),
    responses((status = 200, body = BalanceView), (status = 401), (status = 403),
        (status = 404)))]
pub async fn balance(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(user_id): AppPath<u32>,
) -> Result<Json<BalanceView>, AppError> {
    let user = UserId(i64::from(user_id));
    caller.ensure_can_access(user)?;
    let balance = wallet::balance(&state, user).await?;
    Ok(Json(BalanceView {
        user_id: user.0,
        balance,
    }))
}

/// Charges a balance; honours `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/users/{userId}/balance/charge", tag = "wallet",
    params(("userId" = i64, Path, minimum = 1, maximum = 4294967295.0, description = "User id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-64 visible ASCII")),
    request_body = ChargeRequest, security(("bearer" = [])),
    responses((status = 200, body = ChargeView), (status = 400), (status = 401), (status = 403),
        (status = 404), (status = 422)))]
pub async fn charge(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(user_id): AppPath<u32>,
    IdempotencyKey(key): IdempotencyKey,
    AppJson(body): AppJson<ChargeRequest>,
) -> Result<Json<ChargeView>, AppError> {
    let user = UserId(i64::from(user_id));
    caller.ensure_can_access(user)?;
    let amount = wallet::parse_amount(body.amount.as_ref())?;
    let charged = wallet::charge(&state, user, amount, key).await?;
    Ok(Json(ChargeView {
        user_id: charged.user_id.0,
        balance: charged.balance,
        charged_amount: charged.charged_amount,
    }))
}
