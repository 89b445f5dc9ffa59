//! Sign-up, log-in and log-out pages. The forms call the services the JSON routes call
//! (`signup::sign_up`, `login::log_in` through `sessions::log_in`); a session cookie replaces
//! the bearer token.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::form::CsrfForm;
use super::layout::{self, csrf_field, Nav};
use super::session::{SignedIn, Visitor, WebSettings};
use crate::domain::Role;
use crate::error::AppError;
use crate::http::client_ip::ClientIp;
use crate::http::extract::AppQuery;
use crate::service::sessions;
use crate::service::signup::{self, SignUp};
use crate::state::AppState;

/// `?ended=1` after a session ran out.
#[derive(Deserialize)]
pub struct LoginQuery {
    ended: Option<String>,
}

/// The log-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

/// The sign-up form.
#[derive(Deserialize)]
pub struct SignUpForm {
    email: String,
    name: String,
    password: String,
}

/// A form with no fields but its CSRF token.
#[derive(Deserialize)]
pub struct EmptyForm {}

fn with_cookie(mut response: Response, visitor: &Visitor) -> Response {
    if let Some(cookie) = &visitor.new_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

fn login_form(visitor: &Visitor, email: &str, problem: Option<&crate::error::Problem>) -> Markup {
    html! {
        h1 { "Log in" }
        @if let Some(problem) = problem { (layout::problem_box(problem)) }
        form.stack method="post" action="/login" {
            (csrf_field(&visitor.csrf))
            label for="email" { "E-mail" }
            input #email type="email" name="email" value=(email) autocomplete="email" required;
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password"
                required;
            button type="submit" { "Log in" }
        }
        p { "New here? " a href="/signup" { "Create an account" } }
    }
}

/// `GET /login`.
pub async fn login_page(visitor: Visitor, AppQuery(query): AppQuery<LoginQuery>) -> Response {
    if visitor.signed_in {
        return layout::see_other("/");
    }
    let body = html! {
        @if query.ended.is_some() {
            (layout::notice("Your session has ended. Please log in again."))
        }
        (login_form(&visitor, "", None))
    };
    with_cookie(
        layout::respond(StatusCode::OK, layout::page("Log in", Nav::Anonymous, body)),
        &visitor,
    )
}

/// `POST /login`: opens a session and goes to the shop; a refusal shows the form again with
/// the API's status and code.
pub async fn log_in(
    State(state): State<AppState>,
    Extension(settings): Extension<Arc<WebSettings>>,
    visitor: Visitor,
    client: Option<Extension<ClientIp>>,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let client = client.map_or(
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        |Extension(ClientIp(ip))| ip,
    );
    match sessions::log_in(&state, &form.email, &form.password, client).await {
        Ok(session) => Ok(signed_in_redirect(&settings, &session.token, "/")),
        Err(error @ AppError::InvalidCredentials) => {
            let problem = error.problem();
            let body = login_form(&visitor, &form.email, Some(&problem));
            Ok(layout::respond(
                problem.status,
                layout::page("Log in", Nav::Anonymous, body),
            ))
        }
        Err(other) => Err(other),
    }
}

fn signed_in_redirect(settings: &WebSettings, token: &str, to: &str) -> Response {
    let mut response = layout::see_other(to);
    response
        .headers_mut()
        .append(header::SET_COOKIE, settings.session_cookie(token));
    response
}

fn signup_form(
    visitor: &Visitor,
    email: &str,
    name: &str,
    problem: Option<&crate::error::Problem>,
) -> Markup {
    html! {
        h1 { "Create an account" }
        @if let Some(problem) = problem { (layout::problem_box(problem)) }
        form.stack method="post" action="/signup" {
            (csrf_field(&visitor.csrf))
            label for="email" { "E-mail" }
            input #email type="email" name="email" value=(email) autocomplete="email" required;
            label for="name" { "Name" }
            input #name type="text" name="name" value=(name) autocomplete="name" maxlength="100"
                required;
            label for="password" { "Password (at least 8 characters)" }
            input #password type="password" name="password" autocomplete="new-password"
                minlength="8" maxlength="128" required;
            button type="submit" { "Sign up" }
        }
        p { "Already have an account? " a href="/login" { "Log in" } }
    }
}

/// `GET /signup`.
pub async fn signup_page(visitor: Visitor) -> Response {
    if visitor.signed_in {
        return layout::see_other("/");
    }
    let body = signup_form(&visitor, "", "", None);
    with_cookie(
        layout::respond(
            StatusCode::OK,
            layout::page("Sign up", Nav::Anonymous, body),
        ),
        &visitor,
    )
}

/// `POST /signup`: creates the account (same validation as the API), signs in, goes to the
/// shop; invalid input or a taken e-mail shows the form again with the API's status and code.
pub async fn sign_up(
    State(state): State<AppState>,
    Extension(settings): Extension<Arc<WebSettings>>,
    visitor: Visitor,
    CsrfForm(form): CsrfForm<SignUpForm>,
) -> Result<Response, AppError> {
    let outcome = match SignUp::parse(&form.email, &form.password, &form.name) {
        Ok(request) => signup::sign_up(&state, request, Role::User).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(user_id) => {
            let session = sessions::start(&state, user_id, Role::User).await?;
            Ok(signed_in_redirect(&settings, &session.token, "/"))
        }
        Err(error @ (AppError::Validation(_) | AppError::EmailTaken)) => {
            let problem = error.problem();
            let body = signup_form(&visitor, &form.email, &form.name, Some(&problem));
            Ok(layout::respond(
                problem.status,
                layout::page("Sign up", Nav::Anonymous, body),
            ))
        }
        Err(other) => Err(other),
    }
}

/// `POST /logout`: ends the session in Redis (the cookie is worthless at once) and clears it.
pub async fn log_out(
    State(state): State<AppState>,
    Extension(settings): Extension<Arc<WebSettings>>,
    viewer: SignedIn,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, AppError> {
    sessions::end(&state, &viewer.session.token).await?;
    let mut response = layout::see_other("/login");
    response
        .headers_mut()
        .append(header::SET_COOKIE, settings.clear_session_cookie());
    Ok(response)
}
