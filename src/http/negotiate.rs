//! Content negotiation for errors: a browser (its `Accept` prefers `text/html`) gets an HTML
//! error page with the same status; every other client gets the problem+json document.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::Problem;

const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem \
    auto;padding:0 1rem;color:#222}h1{font-size:1.6rem}code{color:#666}";

/// The response as the client asked for it: a problem response becomes an HTML page when the
/// request's `Accept` preferred HTML (`wants_html`, from [`prefers_html`]); anything else is
/// left as it is. (Applied by the `guard::answer` layer.)
pub fn for_client(wants_html: bool, response: Response) -> Response {
    if !wants_html {
        return response;
    }
    match response.extensions().get::<Arc<Problem>>().cloned() {
        Some(problem) => html_response(response, &problem),
        None => response,
    }
}

/// Whether the `Accept` header ranks `text/html` above JSON (by q-value, then order).
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut best: Option<(f32, bool)> = None;
    for range in accept.split(',').take(32) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|v| v.parse::<f32>().ok())
            })
            .next()
            .unwrap_or(1.0);
        let is_html = media == "text/html" || media == "application/xhtml+xml";
        let is_json = media == "application/json" || media == "application/problem+json";
        if q <= 0.0 || !(is_html || is_json) {
            continue;
        }
        if best.is_none_or(|(best_q, _)| q > best_q) {
            best = Some((q, is_html));
        }
    }
    best.is_some_and(|(_, html)| html)
}

fn html_response(original: Response, problem: &Problem) -> Response {
    let (mut parts, _) = original.into_parts();
    let page = render_page(problem);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts
        .headers
        .insert(header::CONTENT_SECURITY_POLICY, html_csp().clone());
    Response::from_parts(parts, Body::from(page))
}

/// A strict CSP for the error page: nothing may load; only its own inline style (by hash).
fn html_csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let digest = Sha256::digest(PAGE_STYLE.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        let csp = format!(
            "default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'none'"
        );
        HeaderValue::from_str(&csp)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    })
}

fn render_page(problem: &Problem) -> String {
    let status = problem.status.as_u16();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}\
         </title><style>{PAGE_STYLE}</style></head><body><h1>{status} {title}</h1><p>{detail}</p>\
         <p><code>{code}</code></p></body></html>",
        title = escape(problem.title),
        detail = escape(&problem.detail),
        code = escape(problem.code),
    )
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(prefers_html(&accept(chrome)));
        assert!(!prefers_html(&accept("application/json")));
        assert!(!prefers_html(&accept("*/*")));
        assert!(!prefers_html(&accept("application/json, text/html;q=0.5")));
        assert!(!prefers_html(&HeaderMap::new()));
    }

    #[test]
    fn markup_in_details_is_escaped() {
        assert_eq!(
            escape("<script>'x'&\"y\""),
            "&lt;script&gt;&#39;x&#39;&amp;&quot;y&quot;"
        );
    }
}
