//! A TCP proxy between an app and a dependency (Redis, MariaDB) that fails on purpose (used by
//! `flashmart-chaos` and, through `#[path]`, by the integration tests).
//!
//! [`FaultProxy::cut`] resets every open connection and refuses new ones until
//! [`FaultProxy::restore`] — a database or Redis that died or restarts.
//! [`FaultProxy::drop_reply_to`] loses one answer: armed with a set of needles, it watches what clients send; on the first connection whose
//! recent bytes contain every needle (e.g. `EVALSHA` and an order id), it forwards the command,
//! waits until Redis has answered — so the command certainly ran — and then closes the client's
//! connection instead of passing the answer on. fred sees a dropped connection with a command in
//! flight, reconnects and re-sends it: exactly the case of a state-changing script running twice
//! that every script must answer with its first outcome.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bytes of client traffic kept per connection for matching needles.
const WINDOW_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    /// Cancelled to reset every open connection; replaced on restore.
    cut: Mutex<CancellationToken>,
    /// Whether new connections are refused.
    refusing: AtomicBool,
    /// Needles of the armed trap; empty when disarmed.
    armed: Mutex<Vec<Vec<u8>>>,
    /// Replies dropped so far.
    dropped: AtomicUsize,
}

/// A running proxy; stops when dropped.
#[allow(dead_code)] // shared with the integration tests, which use other parts of it
pub struct FaultProxy {
    /// `redis://127.0.0.1:<port>` of the proxy.
    pub url: String,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in front of the Redis at `upstream_url` (`redis://host:port`).
    pub async fn start(upstream_url: &str) -> Self {
        let upstream = upstream_url
            .trim_start_matches("redis://")
            .trim_end_matches('/');
        let mut proxy = Self::start_tcp(upstream).await;
        proxy.url = format!("redis://{}", proxy.url);
        proxy
    }

    /// Starts a proxy in front of `host:port`; `url` is the proxy's own `host:port`.
    pub async fn start_tcp(upstream: &str) -> Self {
        let upstream = upstream.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = listener.local_addr().expect("addr").to_string();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if state.refusing.load(Ordering::SeqCst) {
                    drop(client); // a server that is down: the connection ends at once
                    continue;
                }
                let upstream = upstream.clone();
                let state = state.clone();
                let cut = state.cut.lock().expect("lock").clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        tokio::select! {
                            () = relay(client, server, state) => {}
                            () = cut.cancelled() => {}
                        }
                    }
                });
            }
        });
        Self {
            url,
            shared,
            accept,
        }
    }

    /// Drops the reply to the next command whose bytes contain every needle (once).
    pub fn drop_reply_to(&self, needles: &[&str]) {
        *self.shared.armed.lock().expect("lock") =
            needles.iter().map(|n| n.as_bytes().to_vec()).collect();
    }

    /// Resets every open connection and refuses new ones, like a dependency that went down.
    pub fn cut(&self) {
        self.shared.refusing.store(true, Ordering::SeqCst);
        self.shared.cut.lock().expect("lock").cancel();
    }

    /// Accepts connections again, like a dependency that is back.
    pub fn restore(&self) {
        *self.shared.cut.lock().expect("lock") = CancellationToken::new();
        self.shared.refusing.store(false, Ordering::SeqCst);
    }

    /// Replies dropped so far.
    pub fn dropped(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways; a connection that matched the trap is closed after Redis answered.
async fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let trapped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trapped_up = trapped.clone();
    let up_shared = shared.clone();
    let upstream = tokio::spawn(async move {
        let mut window: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            window.extend_from_slice(&buf[..n]);
            if window.len() > WINDOW_BYTES {
                window.drain(..window.len() - WINDOW_BYTES);
            }
            let hit = matches_trap(&up_shared, &window);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            if hit {
                // Set only once the command is on its way, so the next bytes from Redis are
                // its answer (the tests send one command at a time on an idle app).
                trapped_up.store(true, Ordering::SeqCst);
                window.clear();
            }
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if trapped.load(Ordering::SeqCst) {
            // Redis has answered the trapped command: lose the answer and the connection.
            shared.dropped.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    upstream.abort();
    let _ = client_write.shutdown().await;
}

/// Whether the armed needles all occur in `window`; disarms the trap when they do.
fn matches_trap(shared: &Shared, window: &[u8]) -> bool {
    let mut armed = shared.armed.lock().expect("lock");
    if armed.is_empty() {
        return false;
    }
    let hit = armed
        .iter()
        .all(|needle| window.windows(needle.len()).any(|w| w == needle.as_slice()));
    if hit {
        armed.clear();
    }
    hit
}
