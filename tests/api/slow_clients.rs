//! Slow and idle clients cannot hold an instance: half-sent request heads are closed after
//! `HEADER_READ_TIMEOUT_SECS`, real clients are served meanwhile, and beyond `MAX_CONNECTIONS`
//! new clients wait for a free slot instead of being served past the cap.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_with;

/// Half-open requests each test holds.
const SLOW_CLIENTS: usize = 100;

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; returns how long that took.
async fn time_until_closed(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout_while_real_clients_are_served() {
    let app = spawn_app_with(|env| {
        env.insert("HEADER_READ_TIMEOUT_SECS", "2".to_owned());
    })
    .await;
    let addr = host_port(&app.base);
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: flashmart\r\nX-Slow: 1")
            .await
            .expect("send half a request head");
        slow.push(stream);
    }

    let served = reqwest::get(format!("{}/health/live", app.base))
        .await
        .expect("a real client gets through");
    assert_eq!(served.status(), StatusCode::OK);

    // Closed by the server, not by us: generous bound for a busy machine, far below the 40-75 s
    // an unarmed server held them.
    let closes = futures::future::join_all(
        slow.into_iter()
            .map(|stream| time_until_closed(stream, Duration::from_secs(30))),
    )
    .await;
    let still_open = closes.iter().filter(|c| c.is_none()).count();
    assert_eq!(still_open, 0, "half-sent requests still open after 30 s");
}

#[tokio::test]
async fn beyond_max_connections_new_clients_wait_for_a_free_slot() {
    let app = spawn_app_with(|env| {
        env.insert("MAX_CONNECTIONS", "16".to_owned());
        env.insert("HEADER_READ_TIMEOUT_SECS", "600".to_owned());
    })
    .await;
    let addr = host_port(&app.base);
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let fresh = || {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("client")
    };
    let while_full = fresh()
        .get(format!("{}/health/live", app.base))
        .send()
        .await;
    assert!(
        while_full.is_err(),
        "a 17th connection was served while 16 were open: {while_full:?}"
    );

    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = fresh()
            .get(format!("{}/health/live", app.base))
            .send()
            .await;
        if answer.as_ref().is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not served after the slots were freed: {answer:?}"
        );
    }
}
