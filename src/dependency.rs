//! Which errors are a dependency's failure rather than ours.
//!
//! A request that fails because MySQL or Redis is restarting, unreachable, overloaded or
//! promoting a replica must be answered `503` with `Retry-After` (the client retries with the
//! same `Idempotency-Key`), and the settlement worker must retry the same batch later without
//! counting it as poison. Only our own bugs — a query that does not match the schema, a script
//! that raises its own error, a reply we cannot decode — stay `500` / poison.
//!
//! The classification walks an [`anyhow::Error`]'s cause chain and looks at typed errors only
//! (sqlx, fred, `std::io`), never at message text, except for Redis error replies, whose first
//! word is Redis's own stable error code (`LOADING`, `READONLY`, …).

use fred::error::{Error as RedisError, ErrorKind as RedisErrorKind};
use sqlx::mysql::MySqlDatabaseError;

/// MySQL / MariaDB server error numbers that mean "the server cannot do this now; the same
/// statement will succeed later" (never a property of the statement itself).
const TRANSIENT_MYSQL_ERRORS: [u16; 12] = [
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN: server shutdown in progress
    1077, // ER_NORMAL_SHUTDOWN
    1152, // ER_ABORTING_CONNECTION
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1290, // ER_OPTION_PREVENTS_STATEMENT (--read-only while failing over)
    1317, // ER_QUERY_INTERRUPTED
    1836, // ER_READ_ONLY_MODE
    1927, // ER_CONNECTION_KILLED (MariaDB)
    2006, // CR_SERVER_GONE_ERROR
    2013, // CR_SERVER_LOST
];

/// Redis error-reply codes of a server that is not ready, not writable, not reachable through
/// this node or out of resources: retrying later (or on the promoted primary) succeeds.
const TRANSIENT_REDIS_REPLIES: [&str; 11] = [
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
    "BUSY",
    "NOREPLICAS",
    "MISCONF",
    "OOM",
];

/// Whether any cause in the chain is a dependency failure (see the module doc).
pub fn is_dependency_failure(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            return is_transient_database_error(e);
        }
        if let Some(e) = cause.downcast_ref::<RedisError>() {
            return is_transient_redis_error(e);
        }
        cause.is::<std::io::Error>()
            || cause.is::<tokio::time::error::Elapsed>()
            || cause.is::<crate::cache::durable::ReplicaShortfall>()
    })
}

/// Whether a sqlx error is the database being unreachable, restarting, overloaded or resolving
/// a lock conflict: the same statement can succeed later.
pub fn is_transient_database_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => {
            let number = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number);
            number.is_some_and(|n| TRANSIENT_MYSQL_ERRORS.contains(&n))
                // SQLSTATE class 08: connection exception; 40001: serialization failure
                || db.code().is_some_and(|c| c.starts_with("08") || c == "40001")
        }
        _ => false,
    }
}

/// Whether a fred error is Redis being unreachable, slow, loading, read-only or re-sharding.
pub fn is_transient_redis_error(error: &RedisError) -> bool {
    match error.kind() {
        RedisErrorKind::IO
        | RedisErrorKind::Timeout
        | RedisErrorKind::Canceled
        | RedisErrorKind::Cluster
        | RedisErrorKind::Routing
        | RedisErrorKind::Backpressure => true,
        RedisErrorKind::Unknown => {
            let code = error.details().split_whitespace().next().unwrap_or("");
            TRANSIENT_REDIS_REPLIES.contains(&code)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(kind: RedisErrorKind, details: &str) -> anyhow::Error {
        anyhow::Error::new(RedisError::new(kind, details.to_owned())).context("lua script failed")
    }

    #[test]
    fn redis_outages_and_failovers_are_dependency_failures() {
        for reply in [
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "BUSY Redis is busy running a script.",
            "NOREPLICAS Not enough good replicas to write.",
        ] {
            assert!(
                is_dependency_failure(&redis(RedisErrorKind::Unknown, reply)),
                "{reply}"
            );
        }
        for kind in [
            RedisErrorKind::IO,
            RedisErrorKind::Timeout,
            RedisErrorKind::Canceled,
            RedisErrorKind::Cluster,
        ] {
            assert!(is_dependency_failure(&redis(kind.clone(), "x")), "{kind:?}");
        }
    }

    #[test]
    fn our_own_script_errors_stay_internal() {
        let own = redis(RedisErrorKind::Unknown, "ERR_BAD_DELTA user_script:12");
        assert!(!is_dependency_failure(&own));
        let parse = redis(RedisErrorKind::Parse, "could not convert");
        assert!(!is_dependency_failure(&parse));
        assert!(!is_dependency_failure(&anyhow::anyhow!("boom")));
    }

    #[test]
    fn lost_database_connections_are_dependency_failures() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for e in [
            sqlx::Error::Io(reset),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
        ] {
            let err = anyhow::Error::new(e).context("database query failed");
            assert!(is_dependency_failure(&err), "{err:#}");
        }
        let bug = anyhow::Error::new(sqlx::Error::ColumnNotFound("x".into()));
        assert!(!is_dependency_failure(&bug));
        let missing = anyhow::Error::new(sqlx::Error::RowNotFound);
        assert!(!is_dependency_failure(&missing));
    }
}
