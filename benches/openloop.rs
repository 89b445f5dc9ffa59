//! An open-loop HTTP generator for `make bench`, much cheaper per request than k6: requests
//! leave at a fixed rate whatever the server does, and each one's latency is measured from the
//! moment it was due, not from when a connection was free (so a stalled server shows up as
//! latency, not as fewer requests: no coordinated omission). The timer ticks in milliseconds,
//! so a request may leave up to 1 ms after it was due; that slack is counted in its latency
//! (the figures err on the slow side).
//!
//! One thread, plain HTTP/1.1 keep-alive connections, no TLS: a request is one `write` and
//! usually one `read`. It exists because k6 needs about a third of a core for 2,000 requests/s,
//! which on a 2-core box is CPU taken from the server whose latency it measures.
//!
//! ```text
//! cargo bench --bench openloop -- --url http://127.0.0.1:8080/api/v1/products/popular \
//!     --token "$TOKEN" --rate 2000 --duration 15 --connections 64
//! cargo bench --bench openloop -- --method POST --tokens-file tokens.csv --users 0/2 \
//!     --url http://127.0.0.1:8080/api/v1/coupons/7/issue --rate 1500 --duration 15
//! ```
//! With `--tokens-file` (the load tests' `id,email,token` lines) request n is sent by the
//! n-th user of the file's share `--users K/N` (the lines whose index is K modulo N), round
//! robin: a rush of many users, as k6's coupon-rush sends it.
//! Prints one `RESULT {json}` line: requests sent and answered, statuses, achieved rate,
//! latency percentiles (ms), and requests that could not be sent on time because every
//! connection was busy (they still count, with their waiting time in the latency).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

#[derive(Parser, Debug)]
#[command(about = "Open-loop fixed-rate HTTP load with latency from each request's due time")]
struct Args {
    /// Full URL (http only), e.g. http://127.0.0.1:8080/api/v1/products/popular.
    #[arg(long)]
    url: String,
    /// GET, or POST (with an empty body).
    #[arg(long, default_value = "GET")]
    method: String,
    /// Bearer token sent with every request (none if empty).
    #[arg(long, default_value = "")]
    token: String,
    /// `id,email,token` lines: each request is sent by the next user of the share instead.
    #[arg(long)]
    tokens_file: Option<std::path::PathBuf>,
    /// This generator's share of the tokens file, `K/N`: the lines whose index is K mod N.
    #[arg(long, default_value = "0/1")]
    users: String,
    /// Requests per second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds to send for.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Keep-alive connections (a request waits for a free one; its wait counts as latency).
    #[arg(long, default_value_t = 64)]
    connections: usize,
}

/// A request's due time and its bytes.
type Due = (Instant, Arc<[u8]>);

/// The queue of due requests every connection takes from.
type DueQueue = Arc<Mutex<mpsc::Receiver<Due>>>;

/// What one connection measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (host, path) = split_url(&args.url)?;
    let requests = requests(&args, &host, &path)?;
    let (due_tx, due_rx) = mpsc::channel::<Due>(1 << 20);
    let due_rx = Arc::new(Mutex::new(due_rx));
    let mut workers = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (host, due_rx) = (host.clone(), due_rx.clone());
        workers.push(tokio::spawn(async move { connection(host, due_rx).await }));
    }

    let start = Instant::now() + Duration::from_millis(200);
    let total = u64::from(args.rate) * args.duration;
    let mut late = 0u64;
    for k in 0..total {
        let due = start + Duration::from_nanos(k * 1_000_000_000 / u64::from(args.rate.max(1)));
        tokio::time::sleep_until(due.into()).await;
        if due_tx.capacity() < due_tx.max_capacity() {
            late += 1; // earlier ones still wait for a connection: this one queues behind them
        }
        let request = requests[(k % requests.len() as u64) as usize].clone();
        due_tx
            .send((due, request))
            .await
            .context("every connection failed")?;
    }
    drop(due_tx);
    let sent_secs = start.elapsed().as_secs_f64();

    let mut all = Tally::default();
    for worker in workers {
        let tally = worker.await?;
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
        for (status, n) in tally.statuses {
            *all.statuses.entry(status).or_default() += n;
        }
    }
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let i =
            ((all.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, all.latencies_us.len());
        all.latencies_us[i - 1] as f64 / 1000.0
    };
    let statuses: BTreeMap<String, u64> = all
        .statuses
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    let result = serde_json::json!({
        "sent": total,
        "answered": all.latencies_us.len(),
        "errors": all.errors,
        "queued": late,
        "rate": all.latencies_us.len() as f64 / sent_secs,
        "statuses": statuses,
        "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "p999": pct(0.999),
        "max": all.latencies_us.last().map(|us| *us as f64 / 1000.0).unwrap_or(0.0),
    });
    println!("RESULT {result}");
    Ok(())
}

/// The requests to send in turn: one, or one per user of the tokens file's share.
fn requests(args: &Args, host: &str, path: &str) -> anyhow::Result<Vec<Arc<[u8]>>> {
    let method = args.method.to_ascii_uppercase();
    if method != "GET" && method != "POST" {
        bail!("--method GET or POST, not {}", args.method);
    }
    let one = |token: &str| -> Arc<[u8]> {
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n");
        if !token.is_empty() {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if method == "POST" {
            request.push_str("Content-Length: 0\r\n");
        }
        request.push_str("\r\n");
        Arc::from(request.into_bytes())
    };
    let Some(file) = &args.tokens_file else {
        return Ok(vec![one(&args.token)]);
    };
    let (k, n) = args
        .users
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| k < n)
        .context("--users K/N with K < N")?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file:?}"))?;
    let all: Vec<Arc<[u8]>> = text
        .lines()
        .filter_map(|line| line.rsplit(',').next())
        .filter(|token| !token.trim().is_empty())
        .enumerate()
        .filter(|(i, _)| i % n == k)
        .map(|(_, token)| one(token.trim()))
        .collect();
    if all.is_empty() {
        bail!("no tokens in {file:?} for share {k}/{n}");
    }
    Ok(all)
}

/// `http://host:port/path` → ("host:port", "/path").
fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("only http:// URLs: {url}");
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Ok((
        host.to_owned(),
        if path.is_empty() { "/" } else { path }.to_owned(),
    ))
}

/// One keep-alive connection: takes due times off the shared queue and answers each with its
/// latency; reconnects after an error (the failed request counts as an error).
async fn connection(host: String, due_rx: DueQueue) -> Tally {
    let mut tally = Tally::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (due, request) = {
            let mut rx = due_rx.lock().await;
            match rx.recv().await {
                Some(next) => next,
                None => return tally,
            }
        };
        if stream.is_none() {
            stream = TcpStream::connect(&host).await.ok();
            if let Some(s) = &stream {
                let _ = s.set_nodelay(true);
            }
        }
        let outcome = match stream.as_mut() {
            Some(s) => exchange(s, &request, &mut buf).await,
            None => Err(anyhow::anyhow!("connect failed")),
        };
        match outcome {
            Ok(status) => {
                tally.latencies_us.push(due.elapsed().as_micros() as u64);
                *tally.statuses.entry(status).or_default() += 1;
            }
            Err(_) => {
                tally.errors += 1;
                stream = None;
            }
        }
    }
}

/// Sends the request and reads one response (status line, headers, a `Content-Length` body).
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> anyhow::Result<u16> {
    stream.write_all(request).await?;
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("connection closed");
        }
        filled += n;
        let Some(end) = find(&buf[..filled], b"\r\n\r\n") else {
            if filled == buf.len() {
                bail!("headers too large");
            }
            continue;
        };
        let head = std::str::from_utf8(&buf[..end])?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status")?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("no Content-Length")?;
        let mut body_read = filled - (end + 4);
        while body_read < length {
            let n = stream.read(buf).await?;
            if n == 0 {
                bail!("connection closed in the body");
            }
            body_read += n;
        }
        return Ok(status);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
