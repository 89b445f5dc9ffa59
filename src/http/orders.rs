//! Order routes: create, read, cancel, pay, and the "my page" history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::coupons::rfc3339;
use super::extract::{AppJson, AppPath, AppQuery, AuthUser, IdempotencyKey};
use super::products::page_size;
use crate::domain::UserId;
use crate::error::{AppError, FieldError};
use crate::events::at_millis;
use crate::service::orders::{self, Order};
use crate::service::{history, payments};
use crate::state::AppState;

/// One requested line.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LineRequest {
    /// The product to order (its `id` in the catalog); each product at most once per order.
    pub product_id: i64,
    /// Units, 1–100.
    pub quantity: i64,
}

/// New order body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOrderRequest {
    /// 1–50 lines, each product at most once (each line a JSON object).
    #[schema(value_type = Vec<LineRequest>)]
    pub items: Vec<super::json_body::Object<LineRequest>>,
    /// A coupon you hold, applied to the whole order.
    pub user_coupon_id: Option<i64>,
}

/// An order line as shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineView {
    /// The ordered product's id (its `id` in the catalog).
    pub product_id: i64,
    /// Name at order time.
    pub name: String,
    /// Unit price at order time.
    pub unit_price: i64,
    /// Units ordered of this product, 1–100.
    pub quantity: i64,
    /// unitPrice × quantity.
    pub line_total: i64,
}

/// An order as shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The order's id (a UUID); use it in the order's read, cancel and payment routes.
    pub order_id: String,
    /// PENDING, PAID, EXPIRED or CANCELLED.
    pub status: String,
    /// The ordered lines, priced when the order was created.
    pub items: Vec<LineView>,
    /// Sum of the line totals in won, before the discount.
    pub subtotal: i64,
    /// Won taken off the subtotal by the coupon; 0 without one.
    pub discount: i64,
    /// Won to pay: subtotal − discount.
    pub total: i64,
    /// The coupon applied to the order; omitted when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_coupon_id: Option<i64>,
    /// When the order was created (RFC 3339 UTC).
    pub created_at: String,
    /// Payment deadline (RFC 3339 UTC); a PENDING order not paid by then becomes EXPIRED.
    pub expires_at: String,
    /// When the order was paid (RFC 3339 UTC); omitted unless it is PAID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<String>,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        Self {
            order_id: o.id,
            status: o.status.to_string(),
            items: o
                .items
                .into_iter()
                .map(|l| LineView {
                    product_id: l.product_id,
                    name: l.name,
                    unit_price: l.unit_price,
                    quantity: l.quantity,
                    line_total: l.line_total,
                })
                .collect(),
            subtotal: o.subtotal,
            discount: o.discount,
            total: o.total,
            user_coupon_id: o.user_coupon_id,
            created_at: rfc3339(at_millis(o.created_at_ms)),
            expires_at: rfc3339(at_millis(o.expires_at_ms)),
            paid_at: o.paid_at_ms.map(|ms| rfc3339(at_millis(ms))),
        }
    }
}

/// Order ids are UUIDs; anything else is refused before touching storage.
pub fn order_id(raw: &str) -> Result<&str, AppError> {
    let ok = raw.len() == 36 && raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if ok {
        Ok(raw)
    } else {
        Err(AppError::Validation(vec![FieldError::new(
            "orderId",
            "must be an order id",
        )]))
    }
}

/// Creates a PENDING order that reserves stock (and the coupon) until it is paid or expires.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", operation_id = "createOrder", request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1-64 visible ASCII")),
    security(("bearer" = [])),
    responses((status = 201, body = OrderView), (status = 400), (status = 401), (status = 404),
        (status = 409), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    AppJson(body): AppJson<CreateOrderRequest>,
) -> Result<(StatusCode, Json<OrderView>), AppError> {
    let lines: Vec<orders::RequestedLine> = body
        .items
        .iter()
        .map(|super::json_body::Object(l)| (l.product_id, l.quantity))
        .collect();
    if body.user_coupon_id.is_some_and(|id| id <= 0) {
        return Err(AppError::Validation(vec![FieldError::new(
            "userCouponId",
            "must be positive",
        )]));
    }
    user.ensure_exists()?;
    let order = orders::create(&state, user.id, &lines, body.user_coupon_id, key).await?;
    Ok((StatusCode::CREATED, Json(order.into())))
}

/// One order (yours, or any for admins).
#[utoipa::path(get, path = "/api/v1/orders/{orderId}", tag = "orders", operation_id = "getOrder",
    params(("orderId" = String, Path, pattern = "^[0-9a-fA-F-]{36}$", description = "Order id")), security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 400), (status = 401), (status = 403),
        (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> Result<Json<OrderView>, AppError> {
    let order = orders::get(&state, user.caller(), order_id(&id)?).await?;
    Ok(Json(order.into()))
}

/// Cancels a PENDING order, releasing its stock and coupon.
#[utoipa::path(post, path = "/api/v1/orders/{orderId}/cancel", tag = "orders",
    params(("orderId" = String, Path, pattern = "^[0-9a-fA-F-]{36}$", description = "Order id")), security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 401), (status = 403), (status = 404),
        (status = 409)))]
pub async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> Result<Json<OrderView>, AppError> {
    let order = orders::cancel(&state, user.caller(), order_id(&id)?).await?;
    Ok(Json(order.into()))
}

/// Payment answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// The id of the order this payment paid.
    pub order_id: String,
    /// The payment's id (a UUID); a retry with the same `Idempotency-Key` returns the same one.
    pub payment_id: String,
    /// Always PAID.
    pub status: &'static str,
    /// Won paid.
    pub amount: i64,
    /// The payer's balance in won right after this payment (a retry repeats the first value).
    pub balance: i64,
    /// When the order was paid (RFC 3339 UTC).
    pub paid_at: String,
}

/// Pays a PENDING order from the balance; honours `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/orders/{orderId}/payment", tag = "orders",
    params(("orderId" = String, Path, pattern = "^[0-9a-fA-F-]{36}$", description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-64 visible ASCII")),
    security(("bearer" = [])),
    responses((status = 200, body = PaymentView), (status = 401), (status = 402), (status = 403),
        (status = 404), (status = 409)))]
pub async fn pay(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<PaymentView>, AppError> {
    user.ensure_exists()?;
    let paid = payments::pay(&state, user.caller(), order_id(&id)?, key).await?;
    Ok(Json(PaymentView {
        order_id: paid.order_id,
        payment_id: paid.payment_id,
        status: "PAID",
        amount: paid.amount,
        balance: paid.balance,
        paid_at: rfc3339(at_millis(paid.paid_at_ms)),
    }))
}

/// History paging.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Cursor from a previous page.
    pub cursor: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
}

/// A page of orders.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPageView {
    /// Newest first.
    pub items: Vec<OrderView>,
    /// Cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// "My page": a user's orders, newest first.
#[utoipa::path(get, path = "/api/v1/users/{userId}/orders", tag = "orders",
    params(("userId" = i64, Path, minimum = 1, maximum = 4294967295.0, description = "User id"), HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, body = OrderPageView), (status = 400), (status = 401),
        (status = 403)))]
pub async fn history(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(user_id): AppPath<u32>,
    AppQuery(query): AppQuery<HistoryQuery>,
) -> Result<Json<OrderPageView>, AppError> {
    let user = UserId(i64::from(user_id));
    caller.ensure_can_access(user)?;
    let limit = page_size(query.limit)?;
    let page = history::page(&state, user, query.cursor.as_deref(), limit).await?;
    Ok(Json(OrderPageView {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}
