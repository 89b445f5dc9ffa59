//! The problem document (RFC 9457) every error response carries, as JSON and in the response's
//! extensions (where content negotiation turns it into an HTML page for browsers).

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The problem document of an error response (RFC 9457 plus `code` and extensions).
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The response status (set on the response; this field itself is not serialized).
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable SCREAMING_SNAKE_CASE code.
    pub code: &'static str,
    /// Short human title.
    pub title: &'static str,
    /// What happened, for a human; never internal details.
    pub detail: String,
    /// Extension members (e.g. `errors`, `shortfall`).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// The JSON body: `type`, `title`, `status`, `detail`, `code` and the extensions.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:flashmart:problem:{}", self.code)),
        );
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.insert("code".into(), json!(self.code));
        for (k, v) in &self.extensions {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

/// Renders a problem as `application/problem+json`, keeping the [`Problem`] in the extensions
/// so the content negotiation layer can turn it into an HTML page for browsers.
pub fn problem_response(problem: Problem) -> Response {
    let body = problem.to_json().to_string();
    let mut response = (problem.status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response.extensions_mut().insert(Arc::new(problem));
    response
}
