//! The run's private Redis (AOF, `appendfsync always`) and MariaDB, each in its own directory
//! under the work dir, on free loopback ports, so killing them touches nothing else.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::process::{find_program, free_port, Proc, Spec};

/// How long a (re)started server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private Redis server.
pub struct Redis {
    /// The process.
    pub proc: Proc,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
}

impl Redis {
    /// Starts Redis with its AOF in `dir` and waits until it answers.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let spec = Spec {
            program: find_program("redis-server")?,
            args: [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &dir.display().to_string(),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
            ]
            .map(str::to_owned)
            .to_vec(),
            env: Vec::new(),
            log: dir.join("redis.log"),
        };
        let mut redis = Self {
            proc: Proc::start(spec)?,
            url: format!("redis://127.0.0.1:{port}"),
            port,
        };
        redis.wait_up().await?;
        Ok(redis)
    }

    /// Waits until Redis answers PING with PONG (not LOADING).
    pub async fn wait_up(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let pong = tokio::process::Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "ping"])
                .output()
                .await;
            if pong.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG") {
                return Ok(());
            }
            anyhow::ensure!(
                self.proc.running() && Instant::now() < deadline,
                "Redis did not come up:\n{}",
                self.proc.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A private MariaDB server with a `flashmart` database.
pub struct MariaDb {
    /// The process.
    pub proc: Proc,
    /// `mysql://root@127.0.0.1:<port>/flashmart`.
    pub url: String,
    port: u16,
}

impl MariaDb {
    /// Initialises a data directory in `dir`, starts MariaDB on it, creates the database.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let user = whoami().await;
        let install = tokio::process::Command::new(find_program("mariadb-install-db")?)
            .args([
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                &format!("--user={user}"),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .output()
            .await
            .context("run mariadb-install-db")?;
        anyhow::ensure!(
            install.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let port = free_port()?;
        let spec = Spec {
            program: find_program("mariadbd")?,
            args: vec![
                "--no-defaults".into(),
                format!("--datadir={}", data.display()),
                format!("--user={user}"),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".into(),
                format!("--socket={}", dir.join("mariadbd.sock").display()),
                format!("--pid-file={}", dir.join("mariadbd.pid").display()),
                "--skip-log-bin".into(),
                "--max-connections=500".into(),
                "--innodb-flush-log-at-trx-commit=1".into(),
                "--innodb-buffer-pool-size=256M".into(),
                "--character-set-server=utf8mb4".into(),
                "--collation-server=utf8mb4_unicode_ci".into(),
                "--default-time-zone=+00:00".into(),
            ],
            env: Vec::new(),
            log: dir.join("mariadb.log"),
        };
        let mut db = Self {
            proc: Proc::start(spec)?,
            url: format!("mysql://root@127.0.0.1:{port}/flashmart"),
            port,
        };
        db.wait_up().await?;
        let root = sqlx::MySqlPool::connect(&format!("mysql://root@127.0.0.1:{port}/")).await?;
        sqlx::raw_sql("CREATE DATABASE IF NOT EXISTS flashmart")
            .execute(&root)
            .await?;
        root.close().await;
        Ok(db)
    }

    /// Waits until MariaDB accepts a connection and answers a query.
    pub async fn wait_up(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("mysql://root@127.0.0.1:{}/", self.port);
        loop {
            if let Ok(pool) = sqlx::MySqlPool::connect(&url).await {
                let ok = sqlx::query("SELECT 1").execute(&pool).await.is_ok();
                pool.close().await;
                if ok {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                self.proc.running() && Instant::now() < deadline,
                "MariaDB did not come up:\n{}",
                self.proc.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The user the servers run as (mariadbd refuses root without `--user=root`).
async fn whoami() -> String {
    tokio::process::Command::new("id")
        .arg("-un")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".to_owned())
}
