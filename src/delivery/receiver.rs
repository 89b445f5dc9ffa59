//! A tiny receiver for local use (`flashmart dev-platform`): verifies the signature of each
//! delivery, de-duplicates by event id, logs it, and lists what it received at `GET /events`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::signature;

/// Received events: event id → how many times it arrived.
#[derive(Clone, Default)]
pub struct Received {
    secret: Arc<Vec<u8>>,
    events: Arc<Mutex<BTreeMap<String, u32>>>,
}

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body);
    let signature_header = headers
        .get("x-flashmart-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = chrono::Utc::now().timestamp();
    if !signature::verify(&received.secret, signature_header, &text, now, 300) {
        tracing::warn!("rejected a delivery with a bad signature");
        return StatusCode::UNAUTHORIZED;
    }
    let event_id = headers
        .get("x-flashmart-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_owned();
    let seen = {
        let mut events = received.events.lock().unwrap_or_else(|e| e.into_inner());
        let count = events.entry(event_id.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let order = serde_json::from_str::<Value>(&text).ok();
    let order_id = order
        .as_ref()
        .and_then(|v| v["order"]["orderId"].as_str())
        .unwrap_or("?");
    tracing::info!(event_id, order_id, times = seen, "received order.paid");
    StatusCode::NO_CONTENT
}

async fn list(State(received): State<Received>) -> Json<Value> {
    let events = received
        .events
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(json!({ "distinct": events.len(), "events": events }))
}

/// The receiver's router.
pub fn router(secret: &[u8]) -> Router {
    let state = Received {
        secret: Arc::new(secret.to_vec()),
        events: Default::default(),
    };
    Router::new()
        .route("/events", post(receive).get(list))
        .with_state(state)
}

/// Serves the receiver until Ctrl-C.
pub async fn serve(addr: SocketAddr, secret: &[u8]) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "dev platform receiving at POST /events (GET /events lists them)");
    axum::serve(listener, router(secret))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
