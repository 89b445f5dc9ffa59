//! The backlog is measured from what cannot go stale across a Redis crash.
//!
//! Redis 7.0 restores a consumer group's `entries-read` (and so `XINFO GROUPS` `lag`) stale
//! after an AOF rewrite followed by a crash. This test plays exactly that sequence on a private
//! Redis of its own (it kills it): read 10 entries, `BGREWRITEAOF`, read 10 more, `kill -9`,
//! restart from the AOF; the stream must then be reported drained.

use std::process::Stdio;
use std::time::{Duration, Instant};

use flashmart::cache::keys::Bucket;
use flashmart::cache::Cache;
use flashmart::settlement::stream;
use fred::prelude::*;
use fred::types::InfoKind;
use tokio::process::{Child, Command};

/// A `redis-server` of this test only, with `appendonly yes` / `appendfsync always`.
struct PrivateRedis {
    dir: std::path::PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("fm-lag-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Self {
            dir,
            port,
            child: None,
        };
        redis.spawn().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers().await {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "redis did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the server answers PING (not LOADING).
    async fn answers(&self) -> bool {
        let Ok(client) = Builder::from_config(Config::from_url(&self.url()).expect("url")).build()
        else {
            return false;
        };
        if client.init().await.is_err() {
            return false;
        }
        let pong: Result<String, _> = client.ping(None).await;
        let _ = client.quit().await;
        pong.is_ok()
    }

    /// `kill -9`, then a restart from the same data.
    async fn crash_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill -9");
            child.wait().await.expect("reaped");
        }
        self.spawn().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Appends `n` events, reads them through the group and acknowledges them.
async fn append_read_ack(cache: &Cache, url: &str, n: usize) {
    for i in 0..n {
        let _: String = cache
            .client()
            .xadd(
                cache.keys.events(Bucket(0)),
                false,
                None,
                "*",
                vec![("i", i.to_string())],
            )
            .await
            .expect("xadd");
    }
    let reader = flashmart::cache::build_client(url).await.expect("reader");
    let entries = stream::read_new(&reader, &only(cache), "lag-test", n as u64, 100)
        .await
        .expect("read");
    assert_eq!(entries.len(), n);
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    stream::ack(cache, &only(cache), &ids).await.expect("ack");
    let _ = reader.quit().await;
}

/// The one stream of these tests' single-bucket cache.
fn only(cache: &Cache) -> stream::Stream {
    stream::Stream::of(&cache.keys, Bucket(0))
}

async fn wait_for_rewrite(cache: &Cache) {
    let started = Instant::now();
    loop {
        let info: String = cache
            .client()
            .info(Some(InfoKind::Persistence))
            .await
            .expect("info");
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "AOF rewrite did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_drained_stream_stays_drained_after_an_aof_rewrite_and_a_crash() {
    let mut redis = PrivateRedis::start().await;
    let cache = Cache::connect(&redis.url(), 1, "lag", 1)
        .await
        .expect("connect");
    stream::ensure_group(&cache).await.expect("group");

    append_read_ack(&cache, &redis.url(), 10).await;
    let _: String = cache.client().bgrewriteaof().await.expect("BGREWRITEAOF");
    wait_for_rewrite(&cache).await;
    append_read_ack(&cache, &redis.url(), 10).await;
    assert!(
        stream::lag(&cache).await.expect("lag").drained(),
        "drained before the crash"
    );
    let _ = cache.pool.quit().await;

    redis.crash_and_restart().await;
    let cache = Cache::connect(&redis.url(), 1, "lag", 1)
        .await
        .expect("reconnect");
    let lag = stream::lag(&cache).await.expect("lag");
    assert!(lag.drained(), "phantom backlog after the restart: {lag:?}");

    // A real backlog is still seen: one undelivered, then one pending.
    let _: String = cache
        .client()
        .xadd(
            cache.keys.events(Bucket(0)),
            false,
            None,
            "*",
            vec![("i", "x")],
        )
        .await
        .expect("xadd");
    let lag = stream::lag(&cache).await.expect("lag");
    assert_eq!((lag.pending, lag.undelivered), (0, 1));
    let reader = flashmart::cache::build_client(&redis.url())
        .await
        .expect("reader");
    stream::read_new(&reader, &only(&cache), "lag-test", 10, 100)
        .await
        .expect("read");
    let lag = stream::lag(&cache).await.expect("lag");
    assert_eq!((lag.pending, lag.undelivered), (1, 0));
    assert!(lag.oldest_pending_ms.is_some());
}
