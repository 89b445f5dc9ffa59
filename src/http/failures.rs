//! Logs and counts the failures behind error responses, in one place: [`AppError`] responses
//! carry a [`Failure`] in their extensions (the cause chain of a 500, the dependency behind a
//! 503), which this layer takes out, logs inside the request's span and counts.
//!
//! [`AppError`]: crate::error::AppError

use axum::response::Response;

use crate::error::Failure;

/// Logs (and for overloads counts) the failure an error response carries, then drops it.
/// (Applied by the `guard::answer` layer, inside the request's span.)
pub fn logged(mut response: Response) -> Response {
    match response.extensions_mut().remove::<Failure>() {
        Some(Failure::Dependency(cause)) => {
            metrics::counter!("http_overload_total").increment(1);
            tracing::warn!(
                error = cause,
                "dependency unavailable or overloaded: answered 503"
            );
        }
        Some(Failure::Internal(cause)) => tracing::error!(error = cause, "internal error"),
        Some(Failure::Unavailable) => tracing::warn!("dependency unavailable"),
        None => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;
    use crate::error::AppError;

    async fn answer(path: &str, layered: bool) -> Response {
        let router = Router::new()
            .route(
                "/boom",
                get(|| async { AppError::Internal(anyhow::anyhow!("db row 7 broke")) }),
            )
            .route("/mine", get(|| async { AppError::Forbidden }));
        let request = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("response");
        if layered {
            logged(response)
        } else {
            response
        }
    }

    #[tokio::test]
    async fn a_500_carries_its_cause_to_the_layer_which_takes_it_out() {
        let bare = answer("/boom", false).await;
        assert_eq!(bare.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            bare.extensions().get::<Failure>(),
            Some(&Failure::Internal("db row 7 broke".into()))
        );
        let logged = answer("/boom", true).await;
        assert_eq!(logged.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(logged.extensions().get::<Failure>(), None);
        let client_mistake = answer("/mine", false).await;
        assert_eq!(client_mistake.status(), StatusCode::FORBIDDEN);
        assert_eq!(client_mistake.extensions().get::<Failure>(), None);
    }
}
