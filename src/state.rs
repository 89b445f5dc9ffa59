//! Shared application state handed to every handler.

use std::sync::Arc;

use sqlx::MySqlPool;

use crate::auth::TokenKeys;
use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Config;

/// Cheap-to-clone handle to everything a request may need.
#[derive(Clone)]
pub struct AppState {
    /// MySQL pool (source of truth).
    pub db: MySqlPool,
    /// Redis hot path.
    pub cache: Cache,
    /// Token issuing and verification.
    pub tokens: Arc<TokenKeys>,
    /// Replaceable time source.
    pub clock: Clock,
    /// Process configuration.
    pub config: Arc<Config>,
    /// Login attempts per account (normalised e-mail), on this instance.
    pub login_attempts: Arc<crate::service::login::AttemptLimiter>,
    /// This instance's cache of the popular-products ranking.
    pub popular: Arc<crate::service::popular::PopularCache>,
}
