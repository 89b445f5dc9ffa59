//! Cookies of the storefront and who is asking: [`resolve`] looks the session cookie up once
//! per request; [`SignedIn`] is the extractor of pages that need a session (anyone else is sent
//! to the log-in page); [`Visitor`] gives anonymous forms their CSRF binding.
//!
//! Cookies are `HttpOnly; SameSite=Lax; Path=/`, and `Secure` when the service is served behind
//! TLS (`HSTS_MAX_AGE_SECS` set). The JSON API never reads them: it takes bearer tokens only,
//! so a cookie cannot act on the API from another site.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::RngCore;

use super::csrf::CsrfKey;
use super::layout;
use crate::http::extract::AuthUser;
use crate::service::sessions::{self, Session};
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "fm_session";
/// Name of the cookie that binds anonymous forms (log-in, sign-up) to one browser.
pub const VISITOR_COOKIE: &str = "fm_visitor";

/// What the storefront derives from the configuration once.
pub struct WebSettings {
    /// Signs CSRF tokens.
    pub csrf: CsrfKey,
    /// Whether cookies get `Secure` (served behind TLS).
    pub secure_cookies: bool,
    /// Lifetime of a session cookie (= `ACCESS_TOKEN_TTL_SECONDS`).
    pub session_ttl_secs: u64,
}

impl WebSettings {
    /// Reads what the storefront needs from the process configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            csrf: CsrfKey::derive(config.auth.jwt_secret.expose().as_bytes()),
            secure_cookies: config.server.hsts_max_age_secs.is_some(),
            session_ttl_secs: config.auth.access_token_ttl.as_secs(),
        }
    }

    /// `Set-Cookie` for a new session.
    pub fn session_cookie(&self, token: &str) -> HeaderValue {
        self.cookie(SESSION_COOKIE, token, Some(self.session_ttl_secs))
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session_cookie(&self) -> HeaderValue {
        self.cookie(SESSION_COOKIE, "", Some(0))
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(secs) = max_age {
            text.push_str(&format!("; Max-Age={secs}"));
        }
        if self.secure_cookies {
            text.push_str("; Secure");
        }
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The value of cookie `name` in a request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Marker: the request carried a session cookie that names no live session.
#[derive(Clone, Copy, Debug)]
pub struct EndedSession;

/// Middleware: resolves the session cookie into a [`Session`] and an [`AuthUser`] in the
/// request's extensions (the per-user rate limit then counts the user, as on the API).
pub async fn resolve(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Some(token) = cookie(request.headers(), SESSION_COOKIE).map(str::to_owned) {
        match sessions::find(&state, &token).await {
            Ok(Some(session)) => {
                request.extensions_mut().insert(AuthUser {
                    id: session.user_id,
                    role: session.role,
                    exists: true, // sessions are opened only by a log-in or sign-up
                });
                request.extensions_mut().insert(session);
            }
            Ok(None) => {
                request.extensions_mut().insert(EndedSession);
            }
            Err(error) => return error.into_response(),
        }
    }
    next.run(request).await
}

/// The signed-in shopper of a page, with the CSRF token of their forms.
pub struct SignedIn {
    /// The live session the request's cookie names (its token is what log-out ends).
    pub session: Session,
    /// The caller, as the services expect it.
    pub user: AuthUser,
    /// CSRF token for this session's forms.
    pub csrf: String,
}

/// The storefront settings, put in every request by the router.
pub fn settings(parts: &Parts) -> Arc<WebSettings> {
    parts
        .extensions
        .get::<Arc<WebSettings>>()
        .cloned()
        .expect("the storefront router installs its settings")
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        let settings = settings(parts);
        match parts.extensions.get::<Session>() {
            Some(session) => Ok(Self {
                csrf: settings.csrf.token(&format!("session:{}", session.token)),
                user: AuthUser {
                    id: session.user_id,
                    role: session.role,
                    exists: true,
                },
                session: session.clone(),
            }),
            None if parts.extensions.get::<EndedSession>().is_some() => {
                let mut response = layout::see_other("/login?ended=1");
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, settings.clear_session_cookie());
                Err(response)
            }
            None => Err(layout::see_other("/login")),
        }
    }
}

/// An anonymous visitor's CSRF binding; a first visit gets a new visitor cookie.
pub struct Visitor {
    /// CSRF token for this browser's anonymous forms.
    pub csrf: String,
    /// `Set-Cookie` to send when the visitor cookie is new.
    pub new_cookie: Option<HeaderValue>,
    /// Whether the visitor is already signed in.
    pub signed_in: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        let settings = settings(parts);
        let signed_in = parts.extensions.get::<Session>().is_some();
        let (id, new_cookie) = match cookie(&parts.headers, VISITOR_COOKIE) {
            Some(id) if sessions::well_formed(id) => (id.to_owned(), None),
            _ => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                let cookie = settings.cookie(VISITOR_COOKIE, &id, None);
                (id, Some(cookie))
            }
        };
        Ok(Self {
            csrf: settings.csrf.token(&format!("visitor:{id}")),
            new_cookie,
            signed_in,
        })
    }
}

/// The binding a form posted with this request must be signed for: the live session if there
/// is one, else the visitor cookie; `None` (no cookie at all) refuses every form.
pub fn binding(extensions: &axum::http::Extensions, headers: &HeaderMap) -> Option<String> {
    if let Some(session) = extensions.get::<Session>() {
        return Some(format!("session:{}", session.token));
    }
    cookie(headers, VISITOR_COOKIE)
        .filter(|id| sessions::well_formed(id))
        .map(|id| format!("visitor:{id}"))
}
