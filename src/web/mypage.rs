//! "My page" (`GET /me`): balance with a charge form, my coupons with their status, and my
//! orders newest first, a few per page, each with its lines, totals and status. Charging
//! (`POST /me/charge`) calls `wallet::charge` with the form's idempotency key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use super::form::CsrfForm;
use super::layout::{self, csrf_field, key_field, won, Nav};
use super::orders::{lines_table, short_id};
use super::session::SignedIn;
use super::shop::totals;
use crate::error::AppError;
use crate::http::extract::{AppQuery, IdempotencyKey};
use crate::http::orders::order_id;
use crate::service::{coupons, history, wallet};
use crate::state::AppState;

/// Orders per page of the history.
pub const ORDERS_PER_PAGE: u32 = 5;

/// `?cursor=…` (older orders) and `?done=charged`.
#[derive(Deserialize)]
pub struct MyPageQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// The charge form.
#[derive(Deserialize)]
pub struct ChargeForm {
    amount: String,
    key: String,
    back: Option<String>,
}

/// `GET /me`.
pub async fn page(
    State(state): State<AppState>,
    viewer: SignedIn,
    AppQuery(query): AppQuery<MyPageQuery>,
) -> Result<Response, AppError> {
    let user = viewer.user.id;
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let balance = wallet::balance(&state, user).await?;
    let held = coupons::held(&state, user).await?;
    let orders = history::page(&state, user, cursor, ORDERS_PER_PAGE).await?;
    let body = html! {
        h1 { "My page" }
        @if query.done.as_deref() == Some("charged") {
            (layout::notice("Your balance has been charged."))
        }
        section aria-labelledby="balance-title" {
            h2 #balance-title { "Balance" }
            p.balance { span #balance { (won(balance)) } }
            form.inline-stack method="post" action="/me/charge" {
                (csrf_field(&viewer.csrf))
                (key_field())
                label for="amount" { "Amount to charge (won)" }
                input #amount type="number" name="amount" min="1" max="10000000"
                    inputmode="numeric" required;
                button type="submit" { "Charge" }
            }
        }
        section aria-labelledby="coupons-title" {
            h2 #coupons-title { "My coupons" }
            @if held.is_empty() {
                p.muted { "No coupons yet. " a href="/coupons" { "Get one" } }
            } @else {
                table.coupons {
                    caption.visually-hidden { "My coupons" }
                    thead { tr { th scope="col" { "Coupon" } th scope="col" { "Status" }
                        th scope="col" { "Expires" } } }
                    tbody {
                        @for coupon in &held {
                            tr data-user-coupon-id=(coupon.user_coupon_id) {
                                td { (coupon.name) " (#" (coupon.user_coupon_id) ")" }
                                td.status { (coupon.status) }
                                td { (layout::when(coupon.expires_at)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="orders-title" {
            h2 #orders-title { "My orders" }
            @if orders.items.is_empty() {
                p.muted { "No orders yet." }
            }
            @for order in &orders.items {
                article.order data-order-id=(order.id) {
                    h3 {
                        a href={ "/orders/" (order.id) } { "Order " (short_id(&order.id)) }
                        " · " span.status { (order.status) }
                    }
                    p.muted { "Placed " (layout::when_ms(order.created_at_ms)) }
                    (lines_table(order))
                    (totals(order.subtotal, order.discount, order.total))
                }
            }
            nav.pager aria-label="Order pages" {
                @if cursor.is_some() { a href="/me" { "Newest orders" } }
                @if let Some(next) = &orders.next_cursor {
                    a href={ "/me?cursor=" (next) } { "Older orders" }
                }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("My page", Nav::SignedIn(&viewer), body),
    ))
}

/// Where a charge form may lead back to: my page or one of the orders (never elsewhere).
fn back_to(back: Option<&str>) -> String {
    match back {
        Some(path) => match path.strip_prefix("/orders/").map(order_id) {
            Some(Ok(id)) => format!("/orders/{id}?done=charged"),
            _ => "/me?done=charged".into(),
        },
        None => "/me?done=charged".into(),
    }
}

/// `POST /me/charge`: the same amount rules as the API (`wallet::parse_amount`).
pub async fn charge(
    State(state): State<AppState>,
    viewer: SignedIn,
    CsrfForm(form): CsrfForm<ChargeForm>,
) -> Result<Response, AppError> {
    let raw = form.amount.trim();
    let amount = match raw.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(raw.to_owned()),
    };
    let amount = wallet::parse_amount(Some(&amount))?;
    let key = IdempotencyKey::parse("key", form.key.as_bytes())?;
    wallet::charge(&state, viewer.user.id, amount, Some(key)).await?;
    Ok(layout::see_other(&back_to(form.back.as_deref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_lead_back_only_to_our_own_pages() {
        let id = "0190a3f0-0000-7000-8000-000000000001";
        assert_eq!(
            back_to(Some(&format!("/orders/{id}"))),
            format!("/orders/{id}?done=charged")
        );
        assert_eq!(back_to(Some("https://evil.example/")), "/me?done=charged");
        assert_eq!(back_to(Some("/orders/../../x")), "/me?done=charged");
        assert_eq!(back_to(None), "/me?done=charged");
    }
}
