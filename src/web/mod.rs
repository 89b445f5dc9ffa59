//! The storefront: server-rendered pages for people, on the services the JSON API uses.
//!
//! One file per page group: [`auth`] (sign-up, log-in, log-out), [`shop`] (catalogue, popular
//! products, order form and review), [`coupons`] (campaigns and "get coupon"), [`orders`]
//! (an order, paying it, "please charge first"), [`mypage`] (balance, coupons, history). The
//! plumbing: [`session`] (cookies, who is asking), [`csrf`] and [`form`] (every form carries a
//! token), [`layout`] (page shell, headers), [`errors`] (every failure as a page with the API's
//! status and code), [`assets`] (our CSS and script).
//!
//! Handlers never decide a rule themselves: they parse the form, call the same
//! `service::*` function the JSON handler calls, and render the outcome.

pub mod assets;
pub mod auth;
pub mod coupons;
pub mod csrf;
pub mod errors;
pub mod form;
pub mod layout;
pub mod mypage;
pub mod orders;
pub mod session;
pub mod shop;

use std::sync::Arc;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::http::{ratelimit, Limiters};
use crate::state::AppState;

/// The storefront's routes, to be merged into the application router (which adds the
/// cross-cutting layers: per-IP limit, body limit, request ids, security headers, tracing).
pub fn router(state: &AppState, limiters: &Limiters) -> Router<AppState> {
    let settings = Arc::new(session::WebSettings::from_config(&state.config));
    let auth_limit = || ratelimit::layer(&limiters.auth);
    let pages = Router::new()
        .route("/", get(shop::catalogue))
        .route(
            "/login",
            get(auth::login_page).merge(post(auth::log_in).layer(auth_limit())),
        )
        .route(
            "/signup",
            get(auth::signup_page).merge(post(auth::sign_up).layer(auth_limit())),
        )
        .route("/logout", post(auth::log_out))
        .route("/cart", get(shop::review))
        .route("/orders", post(shop::place))
        .route("/orders/{id}", get(orders::page))
        .route("/orders/{id}/pay", post(orders::pay))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/coupons", get(coupons::page))
        .route(
            "/coupons/{id}/issue",
            post(coupons::issue).layer(ratelimit::layer(&limiters.coupon_issue)),
        )
        .route("/me", get(mypage::page))
        .route("/me/charge", post(mypage::charge))
        .layer(ratelimit::layer(&limiters.general))
        .layer(from_fn_with_state(state.clone(), session::resolve))
        .layer(from_fn(errors::render_problems))
        .layer(Extension(settings));
    Router::new()
        .route("/assets/style.css", get(assets::style))
        .route("/assets/app.js", get(assets::script))
        .merge(pages)
}
