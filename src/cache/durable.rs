//! Durability across failover: a decision leaves Redis — as a 2xx answer, or as a row the
//! settlement worker writes into MySQL — only once `REDIS_MIN_REPLICA_ACKS` replicas hold it.
//!
//! `appendfsync always` makes a decision survive a crash of the primary that made it; it does
//! not survive the promotion of a replica that had not received it yet. So, when replicas are
//! required, a state-changing script goes to Redis as one pipeline on one connection:
//!
//! ```text
//! EVALSHA <script> …          the decision (or a replay of the first one, or a refusal)
//! INCR    {tag}:fence         a write in the script's slot, after the script, on the same node
//! WAIT    <acks> <timeout>    replicas that acknowledged this connection's writes so far
//! ```
//!
//! Replication is one ordered stream per primary, so a replica that acknowledged the fence also
//! holds the script's writes and everything before them — including the first outcome that a
//! replay answers, which is why the fence is written even when the script itself wrote nothing.
//! The pipeline runs on a pool that never re-sends a command and never follows a redirection:
//! if the connection drops or the slot moves between the three commands, the call fails (503;
//! the client retries with its idempotency key) instead of waiting on a connection that did not
//! make the write. Fewer acknowledgements than required within the timeout is a
//! [`ReplicaShortfall`], answered 503 with `Retry-After` (the decision may stand; the retry
//! replays it and waits again).
//!
//! The settlement worker fences in the same way before it writes a batch into MySQL
//! ([`Durable::settle_fence`]), checking on the fencing node that the batch's last entry is there,
//! so MySQL never holds a decision that a failover could take away from Redis.

use std::time::Duration;

use anyhow::Context;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};

use super::scripts::LuaScript;

/// Fewer replicas acknowledged a write than the deployment requires: a dependency failure
/// (503 with `Retry-After`; the settlement worker retries the batch later).
#[derive(Debug, thiserror::Error)]
#[error(
    "{acked} of {wanted} required Redis replicas acknowledged the write within {timeout_ms} ms"
)]
pub struct ReplicaShortfall {
    /// Replicas that must acknowledge (`REDIS_MIN_REPLICA_ACKS`).
    pub wanted: u8,
    /// Replicas that did, as `WAIT` answered.
    pub acked: i64,
    /// How long `WAIT` waited (`REDIS_REPLICA_ACK_TIMEOUT_MS`).
    pub timeout_ms: u64,
}

/// The replica-acknowledged path: its own pool (no re-sends, no redirections), the number of
/// replicas to wait for and how long.
#[derive(Clone)]
pub struct Durable {
    pool: Pool,
    acks: u8,
    timeout: Duration,
}

impl Durable {
    /// Connects the pool for replica-acknowledged calls (`size` connections per node).
    pub async fn connect(
        url: &str,
        size: usize,
        acks: u8,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(acks > 0, "a durable path needs at least one replica ack");
        let pool = super::build_pool_with(url, size, |c| {
            c.max_command_attempts = 1;
            c.max_redirections = 0;
        })
        .await?;
        Ok(Self {
            pool,
            acks,
            timeout,
        })
    }

    /// Replicas every decision waits for.
    pub fn acks(&self) -> u8 {
        self.acks
    }

    /// Runs `script` and returns its reply once the required replicas hold its effects (see the
    /// module doc). A script Redis does not know yet is loaded and the pipeline sent again.
    pub async fn call(
        &self,
        script: &LuaScript,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> anyhow::Result<Value> {
        let first = keys
            .first()
            .context("a replicated script call needs at least one key")?;
        let fence = fence_key(first);
        let slot = fred::util::redis_keyslot(first.as_bytes());
        let client = self.pool.next();
        let started = std::time::Instant::now();
        let mut reloaded = false;
        loop {
            let pipeline = client.pipeline();
            // Pipelines have no EVALSHA of their own: the raw command, routed to the slot of
            // the script's keys (one slot: `call::tests::every_script_call_touches_keys_of_one_slot`).
            let evalsha = CustomCommand::new_static("EVALSHA", ClusterHash::Custom(slot), false);
            let mut words = Vec::with_capacity(2 + keys.len() + args.len());
            words.push(script.sha1().to_owned());
            words.push(keys.len().to_string());
            words.extend(keys.iter().cloned());
            words.extend(args.iter().cloned());
            let _: () = pipeline.custom(evalsha, words).await?;
            let [reply, fenced, waited] = replies(self.fenced(&pipeline, &fence).await)
                .with_context(|| format!("lua script {} failed", script.name()))?;
            match reply {
                Err(e) if !reloaded && e.details().starts_with("NOSCRIPT") => {
                    script.load(client).await?;
                    reloaded = true;
                    continue;
                }
                Err(e) => {
                    script.record(Err(&e), started.elapsed());
                    return Err(anyhow::Error::new(e)
                        .context(format!("lua script {} failed", script.name())));
                }
                Ok(reply) => {
                    script.record(Ok(()), started.elapsed());
                    self.acknowledged(fenced, waited)
                        .with_context(|| format!("lua script {} not replicated", script.name()))?;
                    return Ok(reply);
                }
            }
        }
    }

    /// Returns once the required replicas hold a plain write to `key` that Redis already
    /// answered (for example a log-out's `DEL`): the fence goes to the node that owns `key`
    /// after that write, so a replica that acknowledged the fence holds the write.
    pub async fn replicated_after(&self, key: &str) -> anyhow::Result<()> {
        let client = self.pool.next();
        let pipeline = client.pipeline();
        let [fenced, waited] =
            replies(self.fenced(&pipeline, &fence_key(key)).await).context("fencing a write")?;
        self.acknowledged(fenced, waited)
            .with_context(|| format!("write to {key} not replicated"))
    }

    /// Before the settlement worker writes entries up to `last_id` of `stream` into MySQL: on
    /// the node that owns the stream now, checks that `last_id` is there, writes the fence and
    /// waits for the replicas. An error means "do not settle yet" (a failover may be under way).
    pub async fn settle_fence(&self, stream: &str, last_id: &str) -> anyhow::Result<()> {
        let client = self.pool.next();
        let pipeline = client.pipeline();
        let _: () = pipeline
            .xrange::<(), _, _, _>(stream, last_id, last_id, Some(1))
            .await?;
        let [present, fenced, waited] = replies(self.fenced(&pipeline, &fence_key(stream)).await)
            .context("fencing a settlement batch")?;
        let present = present.context("reading the batch's last entry before settling")?;
        let found = matches!(&present, Value::Array(entries) if !entries.is_empty());
        anyhow::ensure!(
            found,
            "stream entry {last_id} is not on the node that owns {stream} now (a failover?); \
             settling later"
        );
        self.acknowledged(fenced, waited)
            .context("settlement batch not replicated")
    }

    /// Queues `INCR fence` and `WAIT` behind what `pipeline` holds, sends it, and returns every
    /// reply in order.
    async fn fenced(
        &self,
        pipeline: &fred::clients::Pipeline<Client>,
        fence: &str,
    ) -> Vec<FredResultValue> {
        let slot = fred::util::redis_keyslot(fence.as_bytes());
        let wait = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let timeout_ms = self.timeout.as_millis() as i64;
        let queued: Result<(), fred::error::Error> = async {
            let _: () = pipeline.incr(fence).await?;
            let _: () = pipeline
                .custom(wait, vec![i64::from(self.acks), timeout_ms])
                .await?;
            Ok(())
        }
        .await;
        if let Err(e) = queued {
            return vec![Err(e.clone()), Err(e.clone()), Err(e)];
        }
        pipeline.try_all::<Value>().await
    }

    /// Reads the fence's and `WAIT`'s replies: enough replicas, or why not.
    fn acknowledged(&self, fenced: FredResultValue, waited: FredResultValue) -> anyhow::Result<()> {
        fenced.context("writing the replication fence")?;
        let acked = waited
            .context("waiting for replica acknowledgements")?
            .convert::<i64>()
            .context("WAIT did not answer a number")?;
        if acked < i64::from(self.acks) {
            metrics::counter!("redis_replica_shortfalls_total").increment(1);
            return Err(ReplicaShortfall {
                wanted: self.acks,
                acked,
                timeout_ms: self.timeout.as_millis() as u64,
            }
            .into());
        }
        Ok(())
    }
}

type FredResultValue = Result<Value, fred::error::Error>;

/// The `N` replies of a fenced pipeline. A pipeline that failed as a whole (the connection
/// dropped, the node is gone) answers one error instead: that error, typed, so a failover is a
/// dependency failure (503), not a shape we did not expect.
fn replies<const N: usize>(results: Vec<FredResultValue>) -> anyhow::Result<[FredResultValue; N]> {
    match <[_; N]>::try_from(results) {
        Ok(replies) => Ok(replies),
        Err(results) => match results.into_iter().find_map(Result::err) {
            Some(e) => Err(anyhow::Error::new(e)),
            None => anyhow::bail!("a fenced pipeline answered other than {N} replies"),
        },
    }
}

/// The fence key in the slot of `key`: `{tag}:fence` for a key with a hash tag, else
/// `{key}:fence` (whose tag is the key itself, so the same slot).
pub fn fence_key(key: &str) -> String {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return format!("{}:fence", &key[open..open + len + 2]);
            }
        }
    }
    format!("{{{key}}}:fence")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::util::redis_keyslot;

    #[test]
    fn the_fence_is_in_the_slot_of_the_key_it_guards() {
        for key in ["{fm}:bal:7", "{fm:b3}:order:x", "plain", "a{b}c{d}"] {
            let fence = fence_key(key);
            assert_eq!(
                redis_keyslot(fence.as_bytes()),
                redis_keyslot(key.as_bytes()),
                "{key} → {fence}"
            );
        }
        assert_eq!(fence_key("{fm}:bal:7"), "{fm}:fence");
    }

    #[test]
    fn a_pipeline_that_failed_as_a_whole_is_a_dependency_failure() {
        let gone = fred::error::Error::new(fred::error::ErrorKind::IO, "connection closed");
        let err = replies::<3>(vec![Err(gone)]).expect_err("one error for three commands");
        assert!(crate::dependency::is_dependency_failure(&err), "{err:#}");
        assert!(replies::<3>(vec![Ok(Value::Null)]).is_err());
    }

    #[test]
    fn a_shortfall_is_a_dependency_failure() {
        let err = anyhow::Error::new(ReplicaShortfall {
            wanted: 1,
            acked: 0,
            timeout_ms: 500,
        })
        .context("lua script charge.lua not replicated");
        assert!(crate::dependency::is_dependency_failure(&err));
    }
}
