//! Sign-up: create a user account with an argon2id password hash.

use crate::auth::password;
use crate::domain::{Email, Password, Role, UserId, UserName};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{self, users::NewUser};

/// A validated sign-up request.
pub struct SignUp {
    /// E-mail (canonical form).
    pub email: Email,
    /// Password (length-checked).
    pub password: Password,
    /// The name shown for the user (trimmed, 1–100 characters); not used to log in.
    pub name: UserName,
}

impl SignUp {
    /// Validates raw input (every bad field is reported, not only the first).
    pub fn parse(email: &str, password: &str, name: &str) -> Result<Self, AppError> {
        let mut errors = Vec::new();
        let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
        let password = Password::parse(password).map_err(|e| errors.push(e)).ok();
        let name = UserName::parse(name).map_err(|e| errors.push(e)).ok();
        match (email, password, name) {
            (Some(email), Some(password), Some(name)) => Ok(Self {
                email,
                password,
                name,
            }),
            _ => Err(AppError::Validation(errors)),
        }
    }
}

/// Creates the account; an existing e-mail → `EMAIL_TAKEN`.
pub async fn sign_up(state: &AppState, request: SignUp, role: Role) -> Result<UserId, AppError> {
    let hash = password::hash(request.password.expose().to_owned()).await?;
    let new_user = NewUser {
        email: request.email.as_str(),
        name: request.name.as_str(),
        password_hash: &hash,
        role,
        created_at: state.clock.now(),
    };
    match store::users::insert(&state.db, &new_user).await {
        Ok(id) => {
            crate::cache::wallet::init_if_missing(&state.cache, id.0, 0).await?;
            // the auth guard's "user exists" answer, without a MySQL read on first use
            crate::cache::session::raise(&state.cache, id.0, 0).await?;
            metrics::counter!("users_signed_up_total").increment(1);
            Ok(id)
        }
        Err(e) if store::is_unique_violation(&e) => Err(AppError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}
