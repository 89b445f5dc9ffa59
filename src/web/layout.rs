//! The page shell every storefront page shares (head, navigation, main), the response helpers
//! that give pages their headers, and formatting of money and times.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::csrf::FIELD;
use super::session::SignedIn;
use crate::error::Problem;
use crate::events::at_millis;

/// The storefront's CSP: only our own style sheet and script, forms only to us, no framing.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who the navigation is for.
pub enum Nav<'a> {
    /// A signed-in shopper: shop links and a log-out button.
    SignedIn(&'a SignedIn),
    /// Nobody signed in: log-in and sign-up links.
    Anonymous,
    /// Not known (error pages): the shop links only.
    Unknown,
}

/// A whole page: `title`, the navigation and `body`.
pub fn page(title: &str, nav: Nav<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · flashmart" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "flashmart" }
                    nav aria-label="Main" {
                        @match nav {
                            Nav::SignedIn(viewer) => {
                                (shop_links())
                                form.inline method="post" action="/logout" {
                                    (csrf_field(&viewer.csrf))
                                    button.link type="submit" { "Log out" }
                                }
                            }
                            Nav::Anonymous => {
                                a href="/login" { "Log in" }
                                a href="/signup" { "Sign up" }
                            }
                            Nav::Unknown => { (shop_links()) }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn shop_links() -> Markup {
    html! {
        a href="/" { "Shop" }
        a href="/coupons" { "Coupons" }
        a href="/me" { "My page" }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(token); }
}

/// A hidden idempotency key: one per rendered form, so a double submit acts once.
pub fn key_field() -> Markup {
    html! { input type="hidden" name="key" value=(uuid::Uuid::new_v4().to_string()); }
}

/// A problem shown inside a page: what happened, and its stable code (as the API sends it).
pub fn problem_box(problem: &Problem) -> Markup {
    html! {
        div.alert.error role="alert" {
            p.alert-title { (problem.title) }
            p { (problem.detail) }
            @if let Some(errors) = problem.extensions.get("errors").and_then(|e| e.as_array()) {
                ul {
                    @for error in errors {
                        li {
                            (error["field"].as_str().unwrap_or("")) ": "
                            (error["message"].as_str().unwrap_or(""))
                        }
                    }
                }
            }
            p.code { "Code: " code { (problem.code) } }
        }
    }
}

/// A success or information notice.
pub fn notice(text: &str) -> Markup {
    html! { div.alert.ok role="status" { p { (text) } } }
}

/// An HTML response with the storefront's headers.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `303 See Other` to a local path (the answer to every successful form).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Won with thousands separators: `₩1,234,000`.
pub fn won(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + 4);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}₩{out}")
}

/// A time as people read it here: `2026-12-02 16:40 UTC`.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// [`when`] of Unix milliseconds.
pub fn when_ms(ms: i64) -> String {
    when(at_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn won_groups_thousands() {
        assert_eq!(won(0), "₩0");
        assert_eq!(won(999), "₩999");
        assert_eq!(won(1_000), "₩1,000");
        assert_eq!(won(1_234_567), "₩1,234,567");
        assert_eq!(won(-45_000), "-₩45,000");
    }

    #[test]
    fn text_is_escaped_in_pages() {
        let markup = page("<x>", Nav::Anonymous, html! { p { ("<script>") } }).into_string();
        assert!(markup.contains("&lt;script&gt;"));
        assert!(!markup.contains("<script>alert"));
        assert!(markup.contains("<title>&lt;x&gt; · flashmart</title>"));
    }
}
