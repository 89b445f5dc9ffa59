//! What the Redis deployment can promise, read at start: is it a Cluster, does every primary
//! write its AOF with `appendfsync always`, and how many replicas does each have. From that and
//! the configuration, [`required_acks`] decides how many replicas every decision waits for, or
//! refuses a topology that could lose a write it acknowledged.

use anyhow::Context;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};

/// One primary as it reported itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Primary {
    /// `host:port` as the client reaches it.
    pub server: String,
    /// `appendonly yes`.
    pub aof: bool,
    /// `appendfsync always`.
    pub fsync_always: bool,
    /// Replicas attached and `online` now (`INFO replication`).
    pub replicas: u32,
}

/// The deployment: a Cluster's primaries, or the one standalone server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Whether `REDIS_URL` selected Redis Cluster (automatic failover promotes replicas).
    pub cluster: bool,
    /// Every primary (one for a standalone server).
    pub primaries: Vec<Primary>,
}

impl Topology {
    /// The fewest replicas any primary has.
    pub fn min_replicas(&self) -> u32 {
        self.primaries.iter().map(|p| p.replicas).min().unwrap_or(0)
    }
}

/// Asks every primary for its persistence settings and replicas.
pub async fn inspect(client: &Client) -> anyhow::Result<Topology> {
    let cluster = client.is_clustered();
    let servers: Vec<Option<Server>> = if cluster {
        let routing = client
            .cached_cluster_state()
            .context("the Redis Cluster client has no slot map yet")?;
        routing
            .unique_primary_nodes()
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None]
    };
    let mut primaries = Vec::with_capacity(servers.len());
    for server in servers {
        let options = Options {
            cluster_node: server.clone(),
            ..Options::default()
        };
        let node = client.with_options(&options);
        let appendonly: Vec<String> = node.config_get("appendonly").await?;
        let fsync: Vec<String> = node.config_get("appendfsync").await?;
        let info: Value = node
            .custom(
                CustomCommand::new_static("INFO", ClusterHash::Random, false),
                vec!["replication"],
            )
            .await?;
        let info: String = info.convert().context("INFO replication is not text")?;
        primaries.push(Primary {
            server: server.map_or_else(|| "redis".to_owned(), |s| s.to_string()),
            aof: appendonly.get(1).is_some_and(|v| v == "yes"),
            fsync_always: fsync.get(1).is_some_and(|v| v == "always"),
            replicas: connected_replicas(&info)?,
        });
    }
    Ok(Topology { cluster, primaries })
}

/// Replicas that are `state=online` in an `INFO replication` answer (`slaveN:…,state=…`): a
/// replica still in its initial sync acknowledges nothing, so `WAIT` cannot count it yet.
fn connected_replicas(info: &str) -> anyhow::Result<u32> {
    anyhow::ensure!(
        info.lines().any(|line| line.trim().starts_with("role:")),
        "INFO replication has no role line"
    );
    let online = info
        .lines()
        .filter(|line| line.trim().starts_with("slave") && line.contains(":ip="))
        .filter(|line| line.split(',').any(|field| field.trim() == "state=online"))
        .count();
    Ok(u32::try_from(online).unwrap_or(u32::MAX))
}

/// How many replicas must acknowledge every decision, given the topology, the configured
/// `REDIS_MIN_REPLICA_ACKS` (`None`: 1 where every primary has a replica, else 0) and whether the
/// operator accepted losing acknowledged writes (`ALLOW_UNSAFE_REDIS_PERSISTENCE`).
///
/// Refused, unless accepted: a primary without `appendonly yes` + `appendfsync always` (a
/// crash loses acknowledged writes), and a Cluster with replicas but no acknowledgements (an
/// automatic promotion loses them). Always refused: more acknowledgements than some primary has
/// replicas (every decision would fail).
pub fn required_acks(
    topology: &Topology,
    configured: Option<u8>,
    allow_unsafe: bool,
) -> anyhow::Result<Acks> {
    let mut warnings = Vec::new();
    let unsafe_disk: Vec<&Primary> = topology
        .primaries
        .iter()
        .filter(|p| !(p.aof && p.fsync_always))
        .collect();
    if let Some(p) = unsafe_disk.first() {
        let problem = format!(
            "Redis must run with appendonly yes and appendfsync always (found appendonly={} \
             appendfsync={} on {})",
            if p.aof { "yes" } else { "no" },
            if p.fsync_always {
                "always"
            } else {
                "not always"
            },
            p.server
        );
        if !allow_unsafe {
            anyhow::bail!("{problem}; set ALLOW_UNSAFE_REDIS_PERSISTENCE to run anyway");
        }
        warnings.push(problem);
    }
    let fewest = topology.min_replicas();
    let acks = match configured {
        Some(n) => {
            anyhow::ensure!(
                u32::from(n) <= fewest,
                "REDIS_MIN_REPLICA_ACKS={n} but a Redis primary has only {fewest} connected \
                 replica(s): every decision would wait in vain"
            );
            n
        }
        None => u8::from(fewest >= 1),
    };
    let any_replica = topology.primaries.iter().any(|p| p.replicas > 0);
    if acks == 0 && any_replica {
        let problem = "replicas exist but REDIS_MIN_REPLICA_ACKS=0: a promoted replica that had \
                       not received a write loses it although the client was told it succeeded"
            .to_owned();
        if topology.cluster && !allow_unsafe {
            anyhow::bail!(
                "{problem} (Redis Cluster promotes replicas automatically); set \
                 REDIS_MIN_REPLICA_ACKS ≥ 1, or ALLOW_UNSAFE_REDIS_PERSISTENCE to run anyway"
            );
        }
        warnings.push(problem);
    }
    Ok(Acks { acks, warnings })
}

/// The decision of [`required_acks`]: the acknowledgements to wait for, and what the operator
/// accepted (to be logged as warnings at start).
#[derive(Debug, PartialEq, Eq)]
pub struct Acks {
    /// Replicas every decision waits for (0: none).
    pub acks: u8,
    /// Accepted risks, one sentence each.
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(replicas: u32) -> Primary {
        Primary {
            server: "127.0.0.1:7001".into(),
            aof: true,
            fsync_always: true,
            replicas,
        }
    }

    fn topology(cluster: bool, replicas: &[u32]) -> Topology {
        Topology {
            cluster,
            primaries: replicas.iter().map(|&r| primary(r)).collect(),
        }
    }

    #[test]
    fn replicas_everywhere_mean_one_ack_by_default() {
        let acks = required_acks(&topology(true, &[1, 1, 2]), None, false).expect("safe");
        assert_eq!(acks.acks, 1);
        assert!(acks.warnings.is_empty());
        let alone = required_acks(&topology(false, &[0]), None, false).expect("standalone");
        assert_eq!(alone.acks, 0);
        assert!(alone.warnings.is_empty());
    }

    #[test]
    fn more_acks_than_replicas_is_refused() {
        let err = required_acks(&topology(true, &[1, 0, 1]), Some(1), true).expect_err("0");
        assert!(err.to_string().contains("only 0"), "{err}");
    }

    #[test]
    fn a_cluster_that_can_promote_without_acks_is_refused_unless_accepted() {
        let t = topology(true, &[1, 1, 1]);
        assert!(required_acks(&t, Some(0), false).is_err());
        let accepted = required_acks(&t, Some(0), true).expect("accepted");
        assert_eq!(accepted.acks, 0);
        assert_eq!(accepted.warnings.len(), 1);
        // A standalone primary with a replica is promoted only by hand: a warning.
        let standalone = required_acks(&topology(false, &[1]), Some(0), false).expect("warn");
        assert_eq!(standalone.warnings.len(), 1);
    }

    #[test]
    fn a_primary_without_fsync_always_is_refused_unless_accepted() {
        let mut t = topology(false, &[0]);
        t.primaries[0].fsync_always = false;
        let err = required_acks(&t, None, false).expect_err("unsafe");
        assert!(err.to_string().contains("appendfsync"), "{err}");
        assert_eq!(required_acks(&t, None, true).expect("ok").warnings.len(), 1);
    }

    #[test]
    fn replicas_are_read_from_info() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7004,state=online,offset=9,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7005,state=wait_bgsave,offset=0,lag=0\r\n\
                    master_failover_state:no-failover\r\n";
        assert_eq!(
            connected_replicas(info).expect("n"),
            1,
            "only the online one counts"
        );
        assert_eq!(
            connected_replicas("role:master\r\nconnected_slaves:0").expect("0"),
            0
        );
        assert!(connected_replicas("garbage").is_err());
    }
}
