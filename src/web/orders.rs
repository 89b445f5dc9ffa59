//! An order's page (`GET /orders/{id}`): lines, totals, status, and while it is PENDING its
//! payment deadline with a countdown, a pay button and a cancel button. Paying calls
//! `payments::pay`; a balance that falls short answers `402` with the "please charge first"
//! page: the shortfall and a charge form that leads back here to pay.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::auth::EmptyForm;
use super::form::CsrfForm;
use super::layout::{self, csrf_field, key_field, won, Nav};
use super::session::SignedIn;
use super::shop::totals;
use crate::error::AppError;
use crate::events::OrderStatus;
use crate::http::extract::{AppPath, AppQuery, IdempotencyKey};
use crate::http::orders::order_id;
use crate::service::orders::{self, Order};
use crate::service::{payments, wallet};
use crate::state::AppState;

/// A form whose only field (besides the CSRF token) is its idempotency key.
#[derive(Deserialize)]
pub struct KeyForm {
    key: String,
}

/// `?done=charged|paid|cancelled` after a form came back here.
#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// The notice for a `done` word (fixed texts: nothing from the query is shown).
fn done_notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "charged" => Some("Your balance has been charged. You can pay now."),
        "paid" => Some("Thank you! Your order is paid."),
        "cancelled" => Some("The order was cancelled and its products released."),
        _ => None,
    }
}

/// `GET /orders/{id}`.
pub async fn page(
    State(state): State<AppState>,
    viewer: SignedIn,
    AppPath(id): AppPath<String>,
    AppQuery(query): AppQuery<DoneQuery>,
) -> Result<Response, AppError> {
    let order = orders::get(&state, viewer.user.caller(), order_id(&id)?).await?;
    let balance = wallet::balance(&state, crate::domain::UserId(order.user_id)).await?;
    let now_ms = state.clock.now_ms();
    let body = html! {
        h1 { "Order " span.mono { (short_id(&order.id)) } }
        @if let Some(text) = done_notice(query.done.as_deref()) { (layout::notice(text)) }
        p { "Status: " span.status data-status=(order.status) { (order.status) } }
        (lines_table(&order))
        (totals(order.subtotal, order.discount, order.total))
        @if let Some(coupon) = order.user_coupon_id {
            p.muted { "Coupon #" (coupon) " applied." }
        }
        p.muted { "Placed " (layout::when_ms(order.created_at_ms)) "." }
        @if let Some(paid) = order.paid_at_ms {
            p { "Paid " (layout::when_ms(paid)) ". " a href="/me" { "See it on my page" } }
        }
        @if order.status == OrderStatus::Pending {
            @let left_ms = (order.expires_at_ms - now_ms).max(0);
            section.pay aria-labelledby="pay-title" {
                h2 #pay-title { "Pay" }
                p {
                    "Pay by " (layout::when_ms(order.expires_at_ms)) " — "
                    span.countdown data-remaining-ms=(left_ms) role="timer" aria-live="off" {
                        (countdown_text(left_ms))
                    }
                    " left, or the products go back on sale."
                }
                p { "Your balance: " span #balance { (won(balance)) } }
                form.inline method="post" action={ "/orders/" (order.id) "/pay" } {
                    (csrf_field(&viewer.csrf))
                    (key_field())
                    button type="submit" { "Pay " (won(order.total)) }
                }
                form.inline method="post" action={ "/orders/" (order.id) "/cancel" } {
                    (csrf_field(&viewer.csrf))
                    button.secondary type="submit" { "Cancel order" }
                }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Order", Nav::SignedIn(&viewer), body),
    ))
}

/// The first block of an order id (enough for a person to tell orders apart).
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `m:ss` of a duration in ms (what the countdown script then keeps up to date).
pub fn countdown_text(ms: i64) -> String {
    let secs = (ms.max(0) + 999) / 1000;
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// An order's lines as a table.
pub fn lines_table(order: &Order) -> maud::Markup {
    html! {
        table.lines {
            caption.visually-hidden { "Order lines" }
            thead { tr { th scope="col" { "Product" } th.num scope="col" { "Unit price" }
                th.num scope="col" { "Quantity" } th.num scope="col" { "Line total" } } }
            tbody {
                @for line in &order.items {
                    tr {
                        td { (line.name) }
                        td.num { (won(line.unit_price)) }
                        td.num { (line.quantity) }
                        td.num { (won(line.line_total)) }
                    }
                }
            }
        }
    }
}

/// `POST /orders/{id}/pay`: pays from the balance; short → 402 "please charge first".
pub async fn pay(
    State(state): State<AppState>,
    viewer: SignedIn,
    AppPath(id): AppPath<String>,
    CsrfForm(form): CsrfForm<KeyForm>,
) -> Result<Response, AppError> {
    let id = order_id(&id)?;
    let key = IdempotencyKey::parse("key", form.key.as_bytes())?;
    let outcome = payments::pay(&state, viewer.user.caller(), id, Some(key));
    match outcome.await {
        Ok(_) => Ok(layout::see_other(&format!("/orders/{id}?done=paid"))),
        Err(error @ AppError::InsufficientBalance { required, balance }) => {
            Ok(charge_first(&viewer, id, &error, required, balance))
        }
        Err(other) => Err(other),
    }
}

fn charge_first(
    viewer: &SignedIn,
    order_id: &str,
    error: &AppError,
    required: i64,
    balance: i64,
) -> Response {
    let problem = error.problem();
    let shortfall = required - balance;
    let body = html! {
        h1 { "Please charge first" }
        (layout::problem_box(&problem))
        dl.totals {
            dt { "Order total" } dd #required { (won(required)) }
            dt { "Your balance" } dd #balance { (won(balance)) }
            dt { "Missing" } dd #shortfall { (won(shortfall)) }
        }
        form.stack method="post" action="/me/charge" {
            (csrf_field(&viewer.csrf))
            (key_field())
            input type="hidden" name="back" value={ "/orders/" (order_id) };
            label for="amount" { "Amount to charge (won)" }
            input #amount type="number" name="amount" value=(shortfall) min="1" max="10000000"
                inputmode="numeric" required;
            button type="submit" { "Charge" }
        }
        p { a href={ "/orders/" (order_id) } { "Back to the order" } }
    };
    layout::respond(
        problem.status,
        layout::page("Please charge first", Nav::SignedIn(viewer), body),
    )
}

/// `POST /orders/{id}/cancel`: releases stock and coupon of a PENDING order.
pub async fn cancel(
    State(state): State<AppState>,
    viewer: SignedIn,
    AppPath(id): AppPath<String>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    let id = order_id(&id)?;
    orders::cancel(&state, viewer.user.caller(), id).await?;
    Ok(layout::see_other(&format!("/orders/{id}?done=cancelled")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_round_up_to_the_second() {
        assert_eq!(countdown_text(600_000), "10:00");
        assert_eq!(countdown_text(59_001), "1:00");
        assert_eq!(countdown_text(1), "0:01");
        assert_eq!(countdown_text(-5), "0:00");
    }
}
