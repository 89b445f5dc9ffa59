//! The faults: a plan drawn from the seed before the run starts (what, when, for how long), and
//! the world they act on — the instances, Redis, MariaDB, the proxy in front of Redis and the
//! platform. After each fault is healed, the time until every instance is ready again is the
//! fault's recovery time.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::process::Proc;
use crate::proxy::FaultProxy;
use crate::receiver::{Mode, Receiver};
use crate::services::{MariaDb, Redis};

/// One kind of fault.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// `kill -9` an instance, start it again after the hold.
    KillInstance(usize),
    /// SIGSTOP an instance for the hold.
    PauseInstance(usize),
    /// `kill -9` Redis, start it again (from its AOF) after the hold.
    KillRedis,
    /// SIGSTOP Redis for the hold.
    PauseRedis,
    /// `kill -9` MariaDB, start it again (crash recovery) after the hold.
    KillDatabase,
    /// SIGSTOP MariaDB for the hold.
    PauseDatabase,
    /// Kill Redis, restart an instance while Redis is down, bring Redis back after the hold.
    RestartInstanceWhileRedisDown(usize),
    /// Kill MariaDB, restart an instance while it is down, bring it back after the hold.
    RestartInstanceWhileDatabaseDown(usize),
    /// Lose the replies to this many script calls after they ran (fred re-sends them).
    DropReplies(u32),
    /// The platform answers 503 for the hold.
    PlatformFailing,
    /// The platform holds every delivery past the sender's timeout for the hold.
    PlatformHanging,
}

impl Fault {
    /// The kind's name in the report.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillInstance(_) => "kill -9 instance",
            Fault::PauseInstance(_) => "SIGSTOP instance",
            Fault::KillRedis => "kill -9 Redis",
            Fault::PauseRedis => "SIGSTOP Redis",
            Fault::KillDatabase => "kill -9 MariaDB",
            Fault::PauseDatabase => "SIGSTOP MariaDB",
            Fault::RestartInstanceWhileRedisDown(_) => "restart instance while Redis down",
            Fault::RestartInstanceWhileDatabaseDown(_) => "restart instance while MariaDB down",
            Fault::DropReplies(_) => "dropped Redis replies",
            Fault::PlatformFailing => "platform failing",
            Fault::PlatformHanging => "platform hanging",
        }
    }
}

/// A fault at a moment of the run.
#[derive(Clone, Copy, Debug)]
pub struct Planned {
    /// Offset from the start of the workload.
    pub at: Duration,
    /// What.
    pub fault: Fault,
    /// How long it lasts before it is healed.
    pub hold: Duration,
}

/// Draws the plan for a run of `duration` over `instances` instances from `seed`: one fault at
/// a time, 1–4 s apart, held 0.5–4 s; the last 10 % of the run stays calm.
pub fn plan(seed: u64, duration: Duration, instances: usize) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00c4_a05f);
    let calm_from = duration.mul_f64(0.9);
    let mut at = Duration::from_secs(3);
    let mut plan = Vec::new();
    while at < calm_from {
        let i = rng.random_range(0..instances);
        let fault = match rng.random_range(0..11) {
            0 => Fault::KillInstance(i),
            1 => Fault::PauseInstance(i),
            2 => Fault::KillRedis,
            3 => Fault::PauseRedis,
            4 => Fault::KillDatabase,
            5 => Fault::PauseDatabase,
            6 => Fault::RestartInstanceWhileRedisDown(i),
            7 => Fault::RestartInstanceWhileDatabaseDown(i),
            8 => Fault::DropReplies(rng.random_range(1..=5)),
            9 => Fault::PlatformFailing,
            _ => Fault::PlatformHanging,
        };
        let hold = Duration::from_millis(rng.random_range(500..4000));
        plan.push(Planned { at, fault, hold });
        at += hold + Duration::from_millis(rng.random_range(1000..4000));
    }
    plan
}

/// Everything the faults act on.
pub struct World {
    /// The `flashmart serve` processes.
    pub instances: Vec<Proc>,
    /// Base URL per instance.
    pub bases: Vec<String>,
    /// Redis.
    pub redis: Redis,
    /// MariaDB.
    pub db: MariaDb,
    /// The proxy between the instances and Redis.
    pub proxy: FaultProxy,
    /// The platform.
    pub receiver: Receiver,
    /// HTTP client for readiness probes.
    pub http: reqwest::Client,
}

/// Recovery times and counts per fault kind.
#[derive(Default)]
pub struct FaultLog {
    /// kind → recovery times (healed → every instance ready) in seconds.
    pub recoveries: BTreeMap<&'static str, Vec<f64>>,
    /// Faults that did not recover within the limit.
    pub stuck: Vec<String>,
    /// Longest time Redis was down or stopped, in seconds.
    pub longest_redis_outage: f64,
}

impl World {
    /// Plays `plan` from `start`, stopping early when `stop` is cancelled; returns the log.
    pub async fn play(
        &mut self,
        plan: &[Planned],
        start: Instant,
        stop: CancellationToken,
    ) -> FaultLog {
        let mut log = FaultLog::default();
        for planned in plan {
            tokio::select! {
                _ = tokio::time::sleep_until(start + planned.at) => {}
                _ = stop.cancelled() => break,
            }
            println!(
                "  t={:>6.1}s  {:<38} hold {:.1}s",
                planned.at.as_secs_f64(),
                format!("{:?}", planned.fault),
                planned.hold.as_secs_f64()
            );
            let inflicted = Instant::now();
            let result = self.inflict(planned.fault, planned.hold).await;
            if matches!(
                planned.fault,
                Fault::KillRedis | Fault::PauseRedis | Fault::RestartInstanceWhileRedisDown(_)
            ) {
                let outage = inflicted.elapsed().as_secs_f64();
                log.longest_redis_outage = log.longest_redis_outage.max(outage);
            }
            if let Err(e) = result {
                log.stuck.push(format!("{:?}: {e:#}", planned.fault));
                continue;
            }
            let healed = Instant::now();
            match self.wait_all_ready(Duration::from_secs(90)).await {
                Ok(()) => log
                    .recoveries
                    .entry(planned.fault.kind())
                    .or_default()
                    .push(healed.elapsed().as_secs_f64()),
                Err(e) => log.stuck.push(format!("{:?}: {e:#}", planned.fault)),
            }
        }
        log
    }

    /// Inflicts `fault`, holds it, heals it.
    async fn inflict(&mut self, fault: Fault, hold: Duration) -> anyhow::Result<()> {
        match fault {
            Fault::KillInstance(i) => {
                self.instances[i].kill9().await;
                tokio::time::sleep(hold).await;
                self.instances[i].restart()?;
            }
            Fault::PauseInstance(i) => {
                self.instances[i].signal("-STOP");
                tokio::time::sleep(hold).await;
                self.instances[i].signal("-CONT");
            }
            Fault::KillRedis => {
                self.redis.proc.kill9().await;
                tokio::time::sleep(hold).await;
                self.redis.proc.restart()?;
                self.redis.wait_up().await?;
            }
            Fault::PauseRedis => {
                self.redis.proc.signal("-STOP");
                tokio::time::sleep(hold).await;
                self.redis.proc.signal("-CONT");
            }
            Fault::KillDatabase => {
                self.db.proc.kill9().await;
                tokio::time::sleep(hold).await;
                self.db.proc.restart()?;
                self.db.wait_up().await?;
            }
            Fault::PauseDatabase => {
                self.db.proc.signal("-STOP");
                tokio::time::sleep(hold).await;
                self.db.proc.signal("-CONT");
            }
            Fault::RestartInstanceWhileRedisDown(i) => {
                self.redis.proc.kill9().await;
                self.instances[i].kill9().await;
                self.instances[i].restart()?;
                tokio::time::sleep(hold).await;
                self.redis.proc.restart()?;
                self.redis.wait_up().await?;
            }
            Fault::RestartInstanceWhileDatabaseDown(i) => {
                self.db.proc.kill9().await;
                self.instances[i].kill9().await;
                self.instances[i].restart()?;
                tokio::time::sleep(hold).await;
                self.db.proc.restart()?;
                self.db.wait_up().await?;
            }
            Fault::DropReplies(n) => {
                let before = self.proxy.dropped();
                let until = Instant::now() + hold.max(Duration::from_secs(2));
                while self.proxy.dropped() < before + n as usize && Instant::now() < until {
                    self.proxy.drop_reply_to(&["EVALSHA"]);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                self.proxy.drop_reply_to(&[]);
            }
            Fault::PlatformFailing => {
                self.receiver.set_mode(Mode::Failing);
                tokio::time::sleep(hold).await;
                self.receiver.set_mode(Mode::Healthy);
            }
            Fault::PlatformHanging => {
                self.receiver.set_mode(Mode::Hanging);
                tokio::time::sleep(hold).await;
                self.receiver.set_mode(Mode::Healthy);
            }
        }
        Ok(())
    }

    /// Brings everything back: every process running and resumed, the platform healthy.
    pub async fn heal_all(&mut self) -> anyhow::Result<()> {
        self.proxy.drop_reply_to(&[]);
        self.receiver.set_mode(Mode::Healthy);
        self.redis.proc.signal("-CONT");
        if !self.redis.proc.running() {
            self.redis.proc.restart()?;
        }
        self.redis.wait_up().await?;
        self.db.proc.signal("-CONT");
        if !self.db.proc.running() {
            self.db.proc.restart()?;
        }
        self.db.wait_up().await?;
        for instance in &mut self.instances {
            instance.signal("-CONT");
            if !instance.running() {
                instance.restart()?;
            }
        }
        self.wait_all_ready(Duration::from_secs(120)).await
    }

    /// Waits until every instance answers `/health/ready` with 200.
    pub async fn wait_all_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        for (i, base) in self.bases.iter().enumerate() {
            loop {
                let probe = self
                    .http
                    .get(format!("{base}/health/ready"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if probe.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                if !self.instances[i].running() {
                    anyhow::bail!("instance {i} exited:\n{}", self.instances[i].log_tail(20));
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "instance {i} not ready after {limit:?}:\n{}",
                    self.instances[i].log_tail(20)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}
