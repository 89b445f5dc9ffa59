//! `GET /health/live` (the process answers) and `GET /health/ready` (Redis and MySQL answer).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use fred::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppError;
use crate::state::AppState;

/// Health answer.
#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// `ok`.
    pub status: &'static str,
}

/// Liveness: the process is serving.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, body = HealthView)))]
pub async fn live() -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}

/// Readiness: Redis and the database both answer within a second.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = HealthView), (status = 503)))]
pub async fn ready(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<HealthView>), AppError> {
    let check = async {
        let pong: String = state.cache.client().ping(None).await?;
        sqlx::query("SELECT 1").execute(&state.db).await?;
        anyhow::Ok(pong)
    };
    match tokio::time::timeout(Duration::from_secs(1), check).await {
        Ok(Ok(_)) => Ok((StatusCode::OK, Json(HealthView { status: "ok" }))),
        _ => Err(AppError::Unavailable),
    }
}
