//! Every failure of a storefront route as a page: the same status and `code` as the API's
//! problem document, the problem's human detail, nothing internal (the problem carries no
//! cause; see [`crate::error`]).

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use maud::html;

use super::layout::{self, Nav};
use crate::error::Problem;

/// Middleware: replaces a problem+json answer with the storefront's error page, keeping the
/// status and headers (e.g. `Retry-After`), and takes the problem out so the API's
/// negotiation layer leaves the page alone.
pub async fn render_problems(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(problem) = response.extensions().get::<Arc<Problem>>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<Arc<Problem>>();
    let page = error_page(&problem);
    let rendered = layout::respond(problem.status, page);
    let (rendered_parts, body) = rendered.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    for (name, value) in rendered_parts.headers.iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, body)
}

/// The error page of a problem.
pub fn error_page(problem: &Problem) -> maud::Markup {
    let title = format!("{} {}", problem.status.as_u16(), problem.title);
    layout::page(
        &title,
        Nav::Unknown,
        html! {
            h1 { (title) }
            (layout::problem_box(problem))
            p.actions {
                a.button href="/" { "Back to the shop" }
                a href="/me" { "My page" }
            }
        },
    )
}
