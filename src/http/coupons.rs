//! Coupon routes: `GET /api/v1/coupons`, `POST /api/v1/coupons/{couponId}/issue`,
//! `GET /api/v1/users/{userId}/coupons` and the admin `POST /api/v1/admin/coupons`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AppJson, AppPath, AuthUser};
use crate::domain::UserId;
use crate::error::{AppError, FieldError};
use crate::service::coupons;
use crate::state::AppState;
use crate::store::coupons::CampaignRow;

/// RFC 3339 UTC with milliseconds, as every time in the API.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A campaign as listed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignItem {
    /// The campaign's id; use it as `couponId` in `POST /api/v1/coupons/{couponId}/issue`.
    pub coupon_id: i64,
    /// The campaign's display name, as the administrator entered it (1–100 characters).
    pub name: String,
    /// FIXED or PERCENT.
    pub discount_type: String,
    /// Won off, or percent off.
    pub discount_value: i64,
    /// Largest discount in won a PERCENT coupon gives; null when uncapped (and for FIXED).
    pub max_discount: Option<i64>,
    /// Smallest order subtotal.
    pub min_order_amount: i64,
    /// Coupons in total.
    pub total_quantity: i64,
    /// Coupons left.
    pub remaining_quantity: i64,
    /// First moment coupons can be issued (RFC 3339 UTC); before it, issue answers
    /// `409 COUPON_NOT_ACTIVE`.
    pub issue_starts_at: String,
    /// End of issuing (RFC 3339 UTC, exclusive); from then on, issue answers
    /// `409 COUPON_NOT_ACTIVE`.
    pub issue_ends_at: String,
}

/// Campaign list.
#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    /// Newest first.
    pub items: Vec<CampaignItem>,
}

/// Lists campaigns with their remaining quantities.
#[utoipa::path(get, path = "/api/v1/coupons", tag = "coupons", operation_id = "listCoupons", security(("bearer" = [])),
    responses((status = 200, body = CampaignList), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    _user: AuthUser,
) -> Result<Json<CampaignList>, AppError> {
    let items = coupons::list(&state)
        .await?
        .into_iter()
        .map(|v| CampaignItem {
            coupon_id: v.campaign.id,
            name: v.campaign.name,
            discount_type: v.campaign.discount_type,
            discount_value: v.campaign.discount_value,
            max_discount: v.campaign.max_discount,
            min_order_amount: v.campaign.min_order_amount,
            total_quantity: v.campaign.total_quantity,
            remaining_quantity: v.remaining,
            issue_starts_at: rfc3339(v.campaign.issue_starts_at),
            issue_ends_at: rfc3339(v.campaign.issue_ends_at),
        })
        .collect();
    Ok(Json(CampaignList { items }))
}

/// An issued coupon.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedView {
    /// The coupon's id (use it when ordering).
    pub user_coupon_id: i64,
    /// Campaign.
    pub coupon_id: i64,
    /// Always AVAILABLE.
    pub status: &'static str,
    /// Expiry.
    pub expires_at: String,
}

/// Issues one coupon of a first-come campaign to the caller.
#[utoipa::path(post, path = "/api/v1/coupons/{couponId}/issue", tag = "coupons",
    params(("couponId" = i64, Path, minimum = 1, maximum = 4294967295.0, description = "Campaign id")), security(("bearer" = [])),
    responses((status = 201, body = IssuedView), (status = 401), (status = 404),
        (status = 409), (status = 410), (status = 429)))]
pub async fn issue(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(coupon_id): AppPath<u32>,
) -> Result<(StatusCode, Json<IssuedView>), AppError> {
    user.ensure_exists()?;
    let issued = coupons::issue(&state, user.id, i64::from(coupon_id)).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedView {
            user_coupon_id: issued.user_coupon_id,
            coupon_id: issued.coupon_id,
            status: "AVAILABLE",
            expires_at: rfc3339(issued.expires_at),
        }),
    ))
}

/// A coupon a user holds.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldItem {
    /// The id of this issued coupon; pass it as `userCouponId` when creating an order.
    pub user_coupon_id: i64,
    /// The campaign it was issued from (its `couponId` in the coupon list).
    pub coupon_id: i64,
    /// The display name of the campaign it was issued from (empty if that campaign is gone).
    pub name: String,
    /// AVAILABLE, RESERVED, USED or EXPIRED.
    pub status: String,
    /// When the coupon stops being usable (RFC 3339 UTC); an unused coupon past it shows
    /// EXPIRED.
    pub expires_at: String,
}

/// A user's coupons.
#[derive(Serialize, ToSchema)]
pub struct HeldList {
    /// By id.
    pub items: Vec<HeldItem>,
}

/// Lists the coupons a user holds (yours, or anyone's for admins).
#[utoipa::path(get, path = "/api/v1/users/{userId}/coupons", tag = "coupons",
    params(("userId" = i64, Path, minimum = 1, maximum = 4294967295.0, description = "User id")), security(("bearer" = [])),
    responses((status = 200, body = HeldList), (status = 401), (status = 403)))]
pub async fn held(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(user_id): AppPath<u32>,
) -> Result<Json<HeldList>, AppError> {
    let user = UserId(i64::from(user_id));
    caller.ensure_can_access(user)?;
    let items = coupons::held(&state, user)
        .await?
        .into_iter()
        .map(|h| HeldItem {
            user_coupon_id: h.user_coupon_id,
            coupon_id: h.coupon_id,
            name: h.name,
            status: h.status,
            expires_at: rfc3339(h.expires_at),
        })
        .collect();
    Ok(Json(HeldList { items }))
}

/// New campaign body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCampaignRequest {
    /// 1–100 characters.
    pub name: String,
    /// FIXED (won off) or PERCENT.
    pub discount_type: String,
    /// FIXED: 1–10,000,000 won; PERCENT: 1–100.
    pub discount_value: i64,
    /// Cap of a percent discount (won).
    pub max_discount: Option<i64>,
    /// Smallest order subtotal (won), default 0.
    pub min_order_amount: Option<i64>,
    /// Coupons in total, 1–10,000,000.
    pub total_quantity: i64,
    /// Issue window start (RFC 3339).
    pub issue_starts_at: DateTime<Utc>,
    /// Issue window end (RFC 3339), after the start.
    pub issue_ends_at: DateTime<Utc>,
    /// Days a coupon stays valid after issue, 1–365.
    pub valid_days: i32,
}

/// Campaign created.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedCampaign {
    /// Campaign id.
    pub coupon_id: i64,
}

fn validate(body: &CreateCampaignRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name_chars = body.name.trim().chars().count();
    if name_chars == 0 || name_chars > 100 || !crate::domain::text::is_displayable_text(&body.name)
    {
        errors.push(FieldError::new(
            "name",
            "must be 1-100 printable characters",
        ));
    }
    let value_ok = match body.discount_type.as_str() {
        "FIXED" => (1..=10_000_000).contains(&body.discount_value),
        "PERCENT" => (1..=100).contains(&body.discount_value),
        _ => {
            errors.push(FieldError::new("discountType", "must be FIXED or PERCENT"));
            true
        }
    };
    if !value_ok {
        errors.push(FieldError::new(
            "discountValue",
            "FIXED: 1-10000000 won; PERCENT: 1-100",
        ));
    }
    if body
        .max_discount
        .is_some_and(|m| !(1..=1_000_000_000).contains(&m))
    {
        errors.push(FieldError::new("maxDiscount", "must be 1-1000000000"));
    }
    if body
        .min_order_amount
        .is_some_and(|m| !(0..=1_000_000_000).contains(&m))
    {
        errors.push(FieldError::new("minOrderAmount", "must be 0-1000000000"));
    }
    if !(1..=10_000_000).contains(&body.total_quantity) {
        errors.push(FieldError::new("totalQuantity", "must be 1-10000000"));
    }
    if body.issue_ends_at <= body.issue_starts_at {
        errors.push(FieldError::new(
            "issueEndsAt",
            "must be after issueStartsAt",
        ));
    }
    if !(1..=365).contains(&body.valid_days) {
        errors.push(FieldError::new("validDays", "must be 1-365"));
    }
    errors
}

/// Creates a first-come coupon campaign (admin only).
#[utoipa::path(post, path = "/api/v1/admin/coupons", tag = "admin", operation_id = "createCoupon",
    request_body = CreateCampaignRequest, security(("bearer" = [])),
    responses((status = 201, body = CreatedCampaign), (status = 400), (status = 401),
        (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<CreateCampaignRequest>,
) -> Result<(StatusCode, Json<CreatedCampaign>), AppError> {
    user.ensure_admin()?;
    let errors = validate(&body);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let campaign = CampaignRow {
        id: 0,
        name: body.name.trim().to_owned(),
        discount_type: body.discount_type,
        discount_value: body.discount_value,
        max_discount: body.max_discount,
        min_order_amount: body.min_order_amount.unwrap_or(0),
        total_quantity: body.total_quantity,
        issue_starts_at: body.issue_starts_at,
        issue_ends_at: body.issue_ends_at,
        valid_days: body.valid_days,
    };
    let coupon_id = coupons::create_campaign(&state, campaign).await?;
    Ok((StatusCode::CREATED, Json(CreatedCampaign { coupon_id })))
}
