//! OS processes the run owns (Redis, MariaDB, `flashmart serve`): start with the output
//! appended to a log file, `kill -9`, SIGSTOP / SIGCONT, and a free loopback port.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

/// A command line that can be started again after a kill (same program, arguments, env).
#[derive(Clone, Debug)]
pub struct Spec {
    /// Program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment set on top of the inherited one.
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr are appended.
    pub log: PathBuf,
}

/// A running (or stopped) process started from a [`Spec`].
pub struct Proc {
    /// What to run on a restart.
    pub spec: Spec,
    child: Option<Child>,
}

impl Proc {
    /// Starts `spec`.
    pub fn start(spec: Spec) -> anyhow::Result<Self> {
        let mut proc = Self { spec, child: None };
        proc.restart()?;
        Ok(proc)
    }

    /// Starts the process again (after it was killed, or for the first time).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .with_context(|| format!("open {}", self.spec.log.display()))?;
        let child = Command::new(&self.spec.program)
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", self.spec.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether it is running (not exited, not killed).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9` and wait for the exit.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGSTOP (`pause`) or SIGCONT (`resume`).
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.spec.log, lines)
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The program `name` from PATH or the sbin directories (mariadbd lives in /usr/sbin).
pub fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file());
    found.with_context(|| {
        format!("{name} not found; install it with apt-get install mariadb-server redis-server")
    })
}
