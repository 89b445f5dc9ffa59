//! First-come coupon campaigns (`GET /coupons`) and the "get coupon" button
//! (`POST /coupons/{id}/issue`, `coupons::issue`): the page answers with the outcome Redis
//! decided — issued (201), already yours (409), event over (410), not open (409) — with the
//! API's status and code.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::auth::EmptyForm;
use super::form::CsrfForm;
use super::layout::{self, csrf_field, won, Nav};
use super::session::SignedIn;
use crate::error::{AppError, Problem};
use crate::http::extract::AppPath;
use crate::service::coupons::{self, CampaignView, HeldView};
use crate::state::AppState;
use crate::store::coupons::CampaignRow;

/// What a person reads about a campaign's terms: "10% off (up to ₩5,000), orders from ₩30,000".
pub fn terms(c: &CampaignRow) -> String {
    let mut text = if c.discount_type == "PERCENT" {
        let mut t = format!("{}% off", c.discount_value);
        if let Some(cap) = c.max_discount {
            t.push_str(&format!(" (up to {})", won(cap)));
        }
        t
    } else {
        format!("{} off", won(c.discount_value))
    };
    if c.min_order_amount > 0 {
        text.push_str(&format!(", orders from {}", won(c.min_order_amount)));
    }
    text
}

/// The result shown at the top of the page after pressing "get coupon".
enum Outcome {
    Issued {
        user_coupon_id: i64,
        expires: String,
    },
    Refused(Problem, &'static str),
}

/// `GET /coupons`.
pub async fn page(State(state): State<AppState>, viewer: SignedIn) -> Result<Response, AppError> {
    render(&state, &viewer, StatusCode::OK, None).await
}

async fn render(
    state: &AppState,
    viewer: &SignedIn,
    status: StatusCode,
    outcome: Option<Outcome>,
) -> Result<Response, AppError> {
    let campaigns = coupons::list(state).await?;
    let held = coupons::held(state, viewer.user.id).await?;
    let now = state.clock.now();
    let body = html! {
        h1 { "Coupons" }
        @match &outcome {
            Some(Outcome::Issued { user_coupon_id, expires }) => {
                (layout::notice(&format!(
                    "Coupon issued: it is yours (#{user_coupon_id}) until {expires}. Pick it \
                     on the order form."
                )))
            }
            Some(Outcome::Refused(problem, headline)) => {
                div.outcome { p.headline { (headline) } (layout::problem_box(problem)) }
            }
            None => {}
        }
        @if campaigns.is_empty() {
            p.muted { "No coupon campaigns right now." }
        } @else {
            ul.campaigns {
                @for view in &campaigns { (campaign_card(view, &held, now, &viewer.csrf)) }
            }
        }
    };
    Ok(layout::respond(
        status,
        layout::page("Coupons", Nav::SignedIn(viewer), body),
    ))
}

fn campaign_card(view: &CampaignView, held: &[HeldView], now: DateTime<Utc>, csrf: &str) -> Markup {
    let c = &view.campaign;
    let mine = held.iter().find(|h| h.coupon_id == c.id);
    html! {
        li.card data-coupon-id=(c.id) {
            h2.name { (c.name) }
            p { (terms(c)) }
            p.muted {
                (view.remaining) " of " (c.total_quantity) " left · issued "
                (layout::when(c.issue_starts_at)) " – " (layout::when(c.issue_ends_at))
            }
            @if let Some(mine) = mine {
                p.state.yours { "Yours (#" (mine.user_coupon_id) ", " (mine.status) ")" }
            } @else if now < c.issue_starts_at {
                p.state { "Not started yet" }
            } @else if now >= c.issue_ends_at || view.remaining == 0 {
                p.state { "Event over" }
            } @else {
                form method="post" action={ "/coupons/" (c.id) "/issue" } {
                    (csrf_field(csrf))
                    button type="submit" { "Get coupon" span.visually-hidden { ": " (c.name) } }
                }
            }
        }
    }
}

/// `POST /coupons/{id}/issue`: one first-come decision; the page says how it went.
pub async fn issue(
    State(state): State<AppState>,
    viewer: SignedIn,
    AppPath(coupon_id): AppPath<u32>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    match coupons::issue(&state, viewer.user.id, i64::from(coupon_id)).await {
        Ok(issued) => {
            let outcome = Outcome::Issued {
                user_coupon_id: issued.user_coupon_id,
                expires: layout::when(issued.expires_at),
            };
            render(&state, &viewer, StatusCode::CREATED, Some(outcome)).await
        }
        Err(error) => {
            let headline = match &error {
                AppError::CouponAlreadyIssued => "You already have this coupon.",
                AppError::CouponSoldOut => "Sorry, the event is over: every coupon is taken.",
                AppError::CouponNotActive => {
                    not_active_headline(&state, i64::from(coupon_id)).await?
                }
                _ => return Err(error),
            };
            let problem = error.problem();
            let status = problem.status;
            render(
                &state,
                &viewer,
                status,
                Some(Outcome::Refused(problem, headline)),
            )
            .await
        }
    }
}

/// "Not started" or "over", from the campaign's window (the decision was Redis's).
async fn not_active_headline(state: &AppState, coupon_id: i64) -> Result<&'static str, AppError> {
    let now = state.clock.now();
    let campaigns = coupons::list(state).await?;
    let starts = campaigns
        .iter()
        .find(|v| v.campaign.id == coupon_id)
        .map(|v| v.campaign.issue_starts_at);
    Ok(match starts {
        Some(starts) if now < starts => "This event has not started yet.",
        _ => "This event is over: its issue window has ended.",
    })
}
