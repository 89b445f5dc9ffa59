//! The external data platform of the run: checks every delivery's signature, records which
//! paid orders arrived (and under which event id), and fails or hangs on command.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use flashmart::delivery::signature;
use tokio_util::sync::CancellationToken;

/// How the platform answers deliveries right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 204 at once.
    Healthy,
    /// 503 at once.
    Failing,
    /// Holds the request far longer than the sender's timeout.
    Hanging,
}

/// What the platform saw.
#[derive(Default)]
pub struct Seen {
    /// order id → event ids it arrived under (with repeats).
    pub orders: HashMap<String, Vec<String>>,
    /// Deliveries with a signature that did not verify.
    pub bad_signatures: usize,
    /// Deliveries answered 2xx, refused on purpose, and held on purpose.
    pub answered: BTreeMap<&'static str, usize>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>/events`.
    pub url: String,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Seen>>,
    in_flight: Arc<AtomicUsize>,
    secret: Arc<Vec<u8>>,
}

impl Receiver {
    /// Starts the receiver on a free port; it stops when `stop` is cancelled.
    pub async fn start(secret: &str, stop: CancellationToken) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Self {
            url: format!("http://{}/events", listener.local_addr()?),
            mode: Arc::new(AtomicU8::new(0)),
            seen: Arc::default(),
            in_flight: Arc::default(),
            secret: Arc::new(secret.as_bytes().to_vec()),
        };
        let app = Router::new()
            .route("/events", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(receiver)
    }

    /// Switches how deliveries are answered.
    pub fn set_mode(&self, mode: Mode) {
        let code = match mode {
            Mode::Healthy => 0,
            Mode::Failing => 1,
            Mode::Hanging => 2,
        };
        self.mode.store(code, Ordering::SeqCst);
    }

    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            1 => Mode::Failing,
            2 => Mode::Hanging,
            _ => Mode::Healthy,
        }
    }

    /// Runs `f` on what was seen so far.
    pub fn with_seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body).into_owned();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let now = chrono::Utc::now().timestamp();
    if !signature::verify(
        &receiver.secret,
        &header("x-flashmart-signature"),
        &text,
        now,
        300,
    ) {
        receiver
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let mode = receiver.mode();
    let count = |what: &'static str| {
        *receiver
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answered
            .entry(what)
            .or_insert(0) += 1;
    };
    match mode {
        Mode::Failing => {
            count("refused");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        Mode::Hanging => {
            count("held");
            receiver.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(30)).await;
            receiver.in_flight.fetch_sub(1, Ordering::SeqCst);
            // The sender gave up long ago; whatever we answer now is not a delivery it saw.
            return StatusCode::GATEWAY_TIMEOUT;
        }
        Mode::Healthy => {}
    }
    let order_id = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["order"]["orderId"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let event_id = header("x-flashmart-event-id");
    let mut seen = receiver.seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.orders.entry(order_id).or_default().push(event_id);
    *seen.answered.entry("delivered").or_insert(0) += 1;
    StatusCode::NO_CONTENT
}
