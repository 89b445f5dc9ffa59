//! Whether this instance has heard every log-out of a bucket since a given moment: the
//! condition under which its copy of token generations ([`crate::local::Generations`]) may be
//! trusted for longer than `SESSION_CACHE_MS`.
//!
//! `session_gen.lua` announces every raise of a held generation (a log-out) on its bucket's
//! shard channel, in the same script as the raise, and every instance announces its own
//! numbered heartbeat there every [`HEARTBEAT_EVERY`] ([`crate::cache::logouts`]). A Redis node
//! delivers its messages to a subscriber in the order they were published, so hearing our own
//! heartbeat *n* proves we were subscribed when it was published, and hearing *n + 1* next,
//! with no reconnection in between, proves that nothing published on the bucket between the
//! two was missed. A bucket's feed is therefore **intact since** the heartbeat that began its
//! current unbroken run; a missed or repeated heartbeat starts a new run, and a reconnection of
//! the subscriber or a receiver that fell behind ends every run.
//!
//! A copy read at `t` is then current as long as the feed has been intact since before `t`,
//! no log-out of the bucket was heard after `t` (the copy may have been read just before it),
//! and our own heartbeat was heard less than [`SILENCE_LIMIT`] ago (a subscription that died
//! without a word stops vouching within that time).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often each instance publishes its heartbeat on every bucket's channel.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

/// How long after our last heartbeat a bucket's feed still vouches for a copy: a subscription
/// that stopped delivering is noticed within this time.
pub const SILENCE_LIMIT: Duration = Duration::from_millis(1_000);

/// What this instance has heard on one bucket's channel.
#[derive(Default)]
struct BucketFeed {
    /// Start of the current unbroken run of our heartbeats (`None`: broken, none heard since).
    intact_since: Option<Instant>,
    /// When our last heartbeat was heard.
    last_beat: Option<Instant>,
    /// The heartbeat number that continues the run.
    next_beat: Option<u64>,
    /// When the last log-out of the bucket was heard.
    last_logout: Option<Instant>,
}

/// The state of every bucket's log-out channel on this instance.
pub struct LogoutFeed {
    buckets: Box<[Mutex<BucketFeed>]>,
}

impl LogoutFeed {
    /// A feed of `buckets` channels, none heard yet (so none vouches for anything).
    pub fn new(buckets: u16) -> Self {
        Self {
            buckets: (0..buckets)
                .map(|_| Mutex::new(BucketFeed::default()))
                .collect(),
        }
    }

    fn bucket(&self, bucket: u16) -> Option<std::sync::MutexGuard<'_, BucketFeed>> {
        let feed = self.buckets.get(usize::from(bucket))?;
        Some(feed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Our own heartbeat `number` arrived on `bucket`'s channel.
    pub fn heard_heartbeat(&self, bucket: u16, number: u64) {
        let now = Instant::now();
        let Some(mut feed) = self.bucket(bucket) else {
            return;
        };
        if feed.intact_since.is_none() || feed.next_beat != Some(number) {
            // A new run: we are subscribed since this heartbeat was published, but may have
            // missed something before it.
            feed.intact_since = Some(now);
        }
        feed.next_beat = number.checked_add(1);
        feed.last_beat = Some(now);
    }

    /// A log-out (a raise of a held generation) of one of `bucket`'s users arrived.
    pub fn heard_logout(&self, bucket: u16) {
        if let Some(mut feed) = self.bucket(bucket) {
            feed.last_logout = Some(Instant::now());
        }
    }

    /// Something may have been missed on every channel (the subscriber reconnected, or this
    /// instance fell behind reading its messages): no copy read so far is vouched for.
    pub fn broken(&self) {
        for feed in &self.buckets {
            let mut feed = feed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            feed.intact_since = None;
            feed.next_beat = None;
        }
    }

    /// Whether every log-out of `bucket` since `read_at` has been heard (and none was): a copy
    /// read at `read_at` is still what Redis holds.
    pub fn vouches_for(&self, bucket: u16, read_at: Instant) -> bool {
        let Some(feed) = self.bucket(bucket) else {
            return false;
        };
        feed.intact_since.is_some_and(|since| since <= read_at)
            && feed
                .last_beat
                .is_some_and(|beat| beat.elapsed() < SILENCE_LIMIT)
            && feed.last_logout.is_none_or(|logout| logout < read_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_vouched_for_before_a_heartbeat() {
        let feed = LogoutFeed::new(2);
        assert!(!feed.vouches_for(0, Instant::now()));
        assert!(!feed.vouches_for(7, Instant::now()), "no such bucket");
    }

    #[test]
    fn a_run_vouches_for_copies_read_after_it_began_in_its_own_bucket_only() {
        let feed = LogoutFeed::new(2);
        let before = Instant::now();
        feed.heard_heartbeat(0, 10);
        let after = Instant::now();
        assert!(feed.vouches_for(0, after));
        assert!(!feed.vouches_for(0, before), "read before the run began");
        assert!(!feed.vouches_for(1, after), "bucket 1 heard nothing");
        feed.heard_heartbeat(0, 11);
        assert!(feed.vouches_for(0, after), "the run goes on");
    }

    #[test]
    fn a_missed_or_repeated_heartbeat_starts_a_new_run() {
        let feed = LogoutFeed::new(1);
        feed.heard_heartbeat(0, 1);
        let read = Instant::now();
        feed.heard_heartbeat(0, 3);
        assert!(!feed.vouches_for(0, read), "heartbeat 2 was missed");
        let read = Instant::now();
        feed.heard_heartbeat(0, 4);
        assert!(feed.vouches_for(0, read));
        feed.heard_heartbeat(0, 4);
        assert!(!feed.vouches_for(0, read), "a repeat is not the next one");
    }

    #[test]
    fn a_break_ends_every_run_until_the_next_heartbeat() {
        let feed = LogoutFeed::new(2);
        feed.heard_heartbeat(0, 1);
        feed.heard_heartbeat(1, 1);
        let read = Instant::now();
        feed.broken();
        assert!(!feed.vouches_for(0, read));
        assert!(!feed.vouches_for(1, read));
        feed.heard_heartbeat(0, 2);
        assert!(!feed.vouches_for(0, read), "read before the break");
        assert!(feed.vouches_for(0, Instant::now()));
    }

    #[test]
    fn a_log_out_withdraws_copies_read_before_it() {
        let feed = LogoutFeed::new(1);
        feed.heard_heartbeat(0, 1);
        let read = Instant::now();
        feed.heard_logout(0);
        assert!(!feed.vouches_for(0, read));
        assert!(feed.vouches_for(0, Instant::now()), "read after it");
    }

    #[test]
    fn silence_withdraws_the_vouching() {
        let feed = LogoutFeed::new(1);
        feed.heard_heartbeat(0, 1);
        let read = Instant::now();
        feed.bucket(0).expect("bucket 0").last_beat = Instant::now().checked_sub(SILENCE_LIMIT);
        assert!(!feed.vouches_for(0, read));
        feed.heard_heartbeat(0, 2);
        assert!(feed.vouches_for(0, read), "the run was never broken");
    }
}
