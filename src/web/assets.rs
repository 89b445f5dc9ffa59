//! The storefront's own style sheet and script, compiled into the binary (no CDN, nothing
//! external: the CSP allows only these).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const STYLE: &str = include_str!("../../assets/storefront.css");
const SCRIPT: &str = include_str!("../../assets/storefront.js");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /assets/style.css`.
pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /assets/app.js`: the payment countdown (pages work without it).
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}
