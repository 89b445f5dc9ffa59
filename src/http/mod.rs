//! The HTTP surface: one module per resource, the cross-cutting layers, and [`router`] which
//! assembles them. Handlers extract and validate input, call a service and shape the answer.

pub mod auth;
pub mod client_ip;
pub mod coupons;
pub mod extract;
pub mod failures;
pub mod guard;
pub mod health;
pub mod json_body;
pub mod negotiate;
pub mod orders;
pub mod products;
pub mod ratelimit;
pub mod server;
pub mod wallet;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::AppError;
use crate::service::throttle::Budget;
use crate::state::AppState;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "flashmart", description = "Flash-sale commerce API (v1)"),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

/// Answers every operation can give besides its own, so the document matches what the layers
/// and extractors really send: 400 for a malformed path/query/header/body, 413/415 for bodies,
/// 429 from the limiters. Also gives every response the description OpenAPI requires.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder};
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let has_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let mut codes: Vec<&str> = vec!["429"];
                if has_input {
                    codes.push("400");
                }
                if op.request_body.is_some() {
                    codes.extend(["413", "415"]);
                }
                for code in codes {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| RefOr::T(ResponseBuilder::new().build()));
                }
                for (code, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        if response.description.is_empty() {
                            response.description = code
                                .parse::<u16>()
                                .ok()
                                .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("Response")
                                .to_owned();
                        }
                    }
                }
            }
        }
    }
}

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The rate limiters a router uses, so the caller can prune them periodically.
pub struct Limiters {
    /// Per-client budget over every route.
    pub general: ratelimit::Limiter,
    /// Tighter per-user budget on coupon issue.
    pub coupon_issue: ratelimit::Limiter,
    /// Per-IP budget checked before authentication (so floods of bad tokens are throttled too).
    pub per_ip: ratelimit::Limiter,
    /// Tighter per-IP budget on sign-up and login.
    pub auth: ratelimit::Limiter,
}

impl Limiters {
    /// Builds limiters from the configured budget.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            general: ratelimit::limiter(
                config.limits.rate_limit_per_second,
                config.limits.rate_limit_burst,
            ),
            coupon_issue: ratelimit::limiter(
                config.limits.coupon_issue_per_second,
                config.limits.coupon_issue_burst,
            ),
            auth: ratelimit::limiter(
                config.limits.auth_rate_per_second,
                config.limits.auth_rate_burst,
            ),
            per_ip: ratelimit::limiter(
                config.limits.rate_limit_per_second.saturating_mul(10),
                config.limits.rate_limit_burst.saturating_mul(10),
            ),
        }
    }

    /// Every limiter, for pruning.
    pub fn all(&self) -> Vec<ratelimit::Limiter> {
        vec![
            self.general.clone(),
            self.coupon_issue.clone(),
            self.per_ip.clone(),
            self.auth.clone(),
        ]
    }
}

/// Builds the whole application router and its OpenAPI document. `extra` routes (tests only)
/// sit behind the same layers as the real ones.
pub fn router(state: AppState, limiters: &Limiters, extra: Router<AppState>) -> Router {
    let trusted: client_ip::TrustedProxies = Arc::new(state.config.server.trusted_proxies.clone());
    let hsts = hsts_header(&state.config);
    let request_timeout = state.config.server.request_timeout;
    // a budget shared by every instance (Redis), after the cheap local one
    let global =
        |budget: Budget| from_fn_with_state((state.clone(), budget), ratelimit::global_budget);
    let public = OpenApiRouter::new()
        .merge(
            OpenApiRouter::new()
                .routes(routes!(auth::sign_up))
                .routes(routes!(auth::log_in))
                .layer(global(Budget::Anonymous))
                .layer(ratelimit::layer(&limiters.auth)),
        )
        .routes(routes!(health::live))
        .routes(routes!(health::ready));
    let protected = OpenApiRouter::new()
        .routes(routes!(auth::log_out))
        .routes(routes!(products::list))
        .routes(routes!(products::popular))
        .routes(routes!(products::get_one))
        .routes(routes!(products::create))
        .routes(routes!(products::update))
        .routes(routes!(wallet::balance))
        .routes(routes!(coupons::list))
        .routes(routes!(coupons::held))
        .routes(routes!(coupons::create))
        .routes(routes!(orders::get_one))
        .routes(routes!(orders::cancel))
        .routes(routes!(orders::history))
        // Coupon issue takes the coupon-issue budget inside `service::coupons::issue` (in the
        // issue's own script where Redis allows it).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(coupons::issue))
                .layer(ratelimit::layer(&limiters.coupon_issue)),
        )
        // Order creation takes the order budget inside `service::orders::create` (in the
        // order's own script where Redis allows it).
        .routes(routes!(orders::create))
        // Payments take the payment budget inside `service::payments::pay` (mostly in the
        // payment's own script); charges share that budget through the layer.
        .routes(routes!(orders::pay))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(wallet::charge))
                .layer(global(Budget::Payments)),
        );
    let (protected, protected_doc) = protected.split_for_parts();
    let (public, public_doc) = public.split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(public_doc);
    doc.merge(protected_doc);
    utoipa::Modify::modify(&CommonResponses, &mut doc);
    let openapi_json: Arc<String> = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()));

    let protected = protected
        .route(
            "/api/v1/openapi.json",
            get(move || serve_openapi(openapi_json.clone())),
        )
        .layer(ratelimit::layer(&limiters.general))
        .route_layer(from_fn_with_state(state.clone(), guard::require_auth));
    let public = public.layer(ratelimit::layer(&limiters.general));

    let routes = Router::new()
        .merge(public)
        .merge(protected)
        .merge(extra)
        .route_layer(from_fn_with_state(
            Arc::new(guard::RequestMetrics::default()),
            guard::track_metrics,
        ))
        .fallback(guard::not_found)
        .method_not_allowed_fallback(guard::method_not_allowed)
        .with_state(state);
    // The layers every request passes, outermost first, wrapped once around the whole router.
    // (`Router::layer` would wrap each route's boxed service in each layer, and every request
    // would clone and drop that nest of boxes: ~6 % of a cheap read's CPU.)
    let edge = tower::ServiceBuilder::new()
        .layer(from_fn_with_state(hsts, guard::edge_headers))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(from_fn_with_state(Some(request_timeout), guard::answer))
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(from_fn_with_state(trusted, client_ip::client_ip))
        .layer(ratelimit::layer(&limiters.per_ip))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(routes);
    Router::new().fallback_service(edge)
}

/// What an instance serves while it waits for MySQL and Redis at start: `GET /health/live`
/// answers 200, everything else (`/health/ready` included) 503 with Retry-After, as negotiated
/// problem+json or HTML, with the usual security headers.
pub fn warming_router(config: &Config) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .fallback(|| async { AppError::Unavailable })
        .layer(from_fn_with_state(None, guard::answer))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(from_fn_with_state(hsts_header(config), guard::edge_headers))
}

/// `Strict-Transport-Security` when `HSTS_MAX_AGE_SECS` is set.
fn hsts_header(config: &Config) -> Option<HeaderValue> {
    config
        .server
        .hsts_max_age_secs
        .and_then(|secs| HeaderValue::from_str(&format!("max-age={secs}; includeSubDomains")).ok())
}

async fn serve_openapi(json: Arc<String>) -> Response {
    let mut response = json.as_str().to_owned().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    metrics::counter!("http_panics_total").increment(1);
    AppError::Internal(anyhow::anyhow!("request handler panicked")).into_response()
}

/// The tracing span of a request, carrying its request id so every log line can be correlated.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(),
        request_id = %id)
}
