//! This instance's in-memory handles that the shared state holds: the login attempt limiter,
//! a single-flight snapshot cache (and the rendering of its snapshot) and the copy of users'
//! token generations (trusted briefly, or longer while the [`crate::logout_feed`] vouches for
//! it). They depend on nothing in `service`, so `state` does not either (services use the
//! state; the state never uses a service).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cache::Keys;
use crate::logout_feed::LogoutFeed;

/// What a login attempt is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttemptKey {
    /// An existing account, by id (whatever spelling of its e-mail was typed).
    Account(i64),
    /// A canonical e-mail that names no account (so probing unknown addresses is bounded too).
    Unknown(String),
}

impl AttemptKey {
    /// The key's text in a Redis bucket name: `a<id>`, or `e<hash>` of an unknown e-mail (a
    /// fixed 32 characters whatever the client typed).
    pub fn subject(&self) -> String {
        use sha2::Digest;
        match self {
            AttemptKey::Account(id) => format!("a{id}"),
            AttemptKey::Unknown(email) => {
                let digest = sha2::Sha256::digest(email.as_bytes());
                format!("e{}", &hex::encode(digest)[..32])
            }
        }
    }
}

/// Login attempts per (account, client IP): a keyed token bucket on this instance, the cheap
/// first line before the budgets shared through Redis.
pub type AttemptLimiter = governor::DefaultKeyedRateLimiter<(AttemptKey, IpAddr)>;

/// A limiter allowing `per_minute` attempts per key per minute (bursts of the same size).
pub fn attempt_limiter(per_minute: u32) -> AttemptLimiter {
    let per_minute =
        std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute))
}

/// A value computed now and then and served to every reader while fresh enough; one caller
/// at a time refreshes it (single flight), the others keep reading the previous value.
pub struct Memo<T> {
    value: Mutex<Option<(Instant, Arc<T>)>>,
    refresh: tokio::sync::Mutex<()>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self {
            value: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> Memo<T> {
    /// The current value, if any, and whether it is younger than `max_age`.
    pub fn fresh(&self, max_age: Duration) -> (Option<Arc<T>>, bool) {
        let guard = self.value.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((at, value)) => (Some(value.clone()), at.elapsed() < max_age),
            None => (None, false),
        }
    }

    /// Replaces the value with one computed now.
    pub fn store(&self, value: Arc<T>) {
        let mut guard = self.value.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some((Instant::now(), value));
    }

    /// The lock a refreshing caller holds, so only one computes at a time.
    pub fn refresh_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.refresh
    }
}

/// The bytes a shared snapshot was rendered to, kept while that snapshot is the one served:
/// every reader of the same snapshot ([`Memo`]'s `Arc`) gets the one rendering instead of
/// rendering it again. Holding the snapshot keeps its identity unique.
pub struct Rendered<T> {
    last: Mutex<Option<(Arc<T>, axum::body::Bytes)>>,
}

impl<T> Default for Rendered<T> {
    fn default() -> Self {
        Self {
            last: Mutex::new(None),
        }
    }
}

impl<T> Rendered<T> {
    /// The rendering of `value`: the kept one if `value` is the snapshot it was made from,
    /// else `render(value)`, kept from now on.
    pub fn of<E>(
        &self,
        value: &Arc<T>,
        render: impl FnOnce(&T) -> Result<Vec<u8>, E>,
    ) -> Result<axum::body::Bytes, E> {
        {
            let guard = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((of, bytes)) = guard.as_ref() {
                if Arc::ptr_eq(of, value) {
                    return Ok(bytes.clone());
                }
            }
        }
        let bytes = axum::body::Bytes::from(render(value)?);
        let mut guard = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some((value.clone(), bytes.clone()));
        Ok(bytes)
    }
}

/// What an instance knows of a user's tokens (see [`Generations`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The user exists; tokens issued below this generation are revoked.
    Generation(i64),
    /// No user has this id.
    NoSuchUser,
}

/// Shards of [`Generations`] (a power of two: the user id picks one with a mask).
const GENERATION_SHARDS: usize = 64;
/// Entries one shard keeps before it drops the stale ones (and, if all are fresh, every one):
/// bounds the copy at 64 × 4,096 users whatever the traffic.
const GENERATION_SHARD_CAPACITY: usize = 4_096;

/// What one shard of [`Generations`] knows of a user.
struct Entry {
    /// When the read that produced `known` started.
    read_at: Instant,
    known: Known,
    /// Read from Redis (not written by this instance), so the log-out feed may vouch for it.
    vouchable: bool,
    /// When a caller started reading it again (see [`Lookup::Refresh`]).
    refreshing: Option<Instant>,
}

/// One shard of [`Generations`]: what is known, and the reads under way.
#[derive(Default)]
struct GenerationShard {
    known: HashMap<i64, Entry>,
    loading: HashMap<i64, Arc<tokio::sync::OnceCell<(Instant, Known)>>>,
}

/// What [`Generations::lookup`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Known, and read less than a quarter of the ttl ago (or being read again).
    Fresh(Known),
    /// Known and still trusted, but read more than a quarter of the ttl ago (half the feed's
    /// trust, when the feed vouches for it): this caller, the
    /// only one told so until the entry is replaced (or its read has taken another quarter),
    /// reads it again while the others keep using it.
    Refresh(Known),
    /// Nothing trusted: read it ([`Generations::load`]).
    Missing,
}

/// This instance's copy of users' token generations, each trusted for at most `ttl` after the
/// read that produced it started (`SESSION_CACHE_MS`) — or, with a [`LogoutFeed`] that vouches
/// for it, for up to `SESSION_FEED_TRUST_MS`. The auth guard answers from it without
/// a Redis round trip, so an authenticated request that needs nothing else from Redis (the
/// popular products, a product page) finishes in one poll instead of holding its connection's
/// memory across a network wait. Concurrent reads of one user are one read (single flight),
/// and a user in steady use is read again by one request once a quarter of the ttl has passed,
/// so the others do not wait for it even when a saturated instance takes hundreds of
/// milliseconds to see a reply. A generation only ever rises, here as in Redis; a log-out raises
/// it here at once, on the other instances as soon as their feed hears it, and at the latest
/// once their copy is older than `ttl` and no feed vouches for it.
pub struct Generations {
    ttl: Duration,
    shards: Box<[Mutex<GenerationShard>]>,
    vouching: Option<Vouching>,
}

/// The longer trust a [`LogoutFeed`] allows.
struct Vouching {
    feed: Arc<LogoutFeed>,
    /// Where a user's log-outs are announced (its bucket).
    keys: Keys,
    /// Longest trust in a copy the feed vouches for.
    trust: Duration,
}

impl Generations {
    /// A copy trusted for `ttl`; `Duration::ZERO` keeps nothing (every lookup reads Redis).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            shards: (0..GENERATION_SHARDS)
                .map(|_| Mutex::new(GenerationShard::default()))
                .collect(),
            vouching: None,
        }
    }

    /// The same copy, trusting an entry read from Redis for up to `trust` while `feed` vouches
    /// for it (every log-out of the user's bucket since the read was heard; see
    /// [`crate::logout_feed`]). Without a `ttl` the copy keeps nothing, feed or not.
    pub fn vouched_by(mut self, feed: Arc<LogoutFeed>, keys: Keys, trust: Duration) -> Self {
        self.vouching = Some(Vouching { feed, keys, trust });
        self
    }

    /// How long an entry may be of use at most.
    fn longest_trust(&self) -> Duration {
        self.vouching
            .as_ref()
            .map_or(self.ttl, |v| v.trust.max(self.ttl))
    }

    /// Whether the feed vouches for `entry` of `user`.
    fn vouched(&self, user: i64, entry: &Entry) -> bool {
        let Some(v) = &self.vouching else {
            return false;
        };
        // (How long it is trusted is `lookup`'s part: `trust` from the read.)
        entry.vouchable
            && matches!(entry.known, Known::Generation(_))
            && v.feed.vouches_for(v.keys.of_user(user).0, entry.read_at)
    }

    /// A log-out of `user` raised its generation to `generation` (heard on the feed): an entry
    /// below it is raised at once.
    pub fn raise_heard(&self, user: i64, generation: i64) {
        let mut shard = self.shard(user);
        if let Some(entry) = shard.known.get_mut(&user) {
            if let Known::Generation(held) = entry.known {
                if held < generation {
                    entry.known = Known::Generation(generation);
                }
            }
        }
    }

    fn shard(&self, user: i64) -> std::sync::MutexGuard<'_, GenerationShard> {
        let index = (user as u64 as usize) & (GENERATION_SHARDS - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What is known of `user`, and whether this caller should read it again.
    pub fn lookup(&self, user: i64) -> Lookup {
        if self.ttl.is_zero() {
            return Lookup::Missing;
        }
        let mut shard = self.shard(user);
        let Some(entry) = shard.known.get_mut(&user) else {
            return Lookup::Missing;
        };
        // Vouched for: read again by one caller after half the feed's trust; otherwise after a
        // quarter of the ttl.
        let (trusted_for, refresh_after) = match &self.vouching {
            Some(v) if self.vouched(user, entry) => (v.trust, v.trust / 2),
            _ => (self.ttl, self.ttl / 4),
        };
        let age = entry.read_at.elapsed();
        if age >= trusted_for {
            Lookup::Missing
        } else if age >= refresh_after
            && entry
                .refreshing
                .is_none_or(|started| started.elapsed() >= self.ttl / 4)
        {
            // (A read started a quarter ago and not back yet was dropped with its request.)
            entry.refreshing = Some(Instant::now());
            Lookup::Refresh(entry.known)
        } else {
            Lookup::Fresh(entry.known)
        }
    }

    /// What `load` says of `user` now, remembered. Callers that ask for the same user while a
    /// read is under way wait for its answer instead of starting their own; a read that
    /// fails is the failure of its caller only (the next waiter reads again).
    pub async fn load<F, Fut, E>(&self, user: i64, load: F) -> Result<Known, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Known, E>>,
    {
        if self.ttl.is_zero() {
            return load().await;
        }
        let cell = self
            .shard(user)
            .loading
            .entry(user)
            .or_insert_with(|| Arc::new(tokio::sync::OnceCell::new()))
            .clone();
        let answer = cell
            .get_or_try_init(|| async {
                let read_at = Instant::now();
                load().await.map(|known| (read_at, known))
            })
            .await
            .copied();
        if let Ok((read_at, known)) = answer {
            self.record(user, known, read_at, true);
        }
        let mut shard = self.shard(user);
        if shard
            .loading
            .get(&user)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            shard.loading.remove(&user);
        }
        answer.map(|(_, known)| known)
    }

    /// Records what this instance just made Redis hold for `user` (a log-out, a new token).
    /// (Only `SESSION_CACHE_MS` long: the feed vouches for what was read from Redis, and what
    /// this instance wrote may have been overtaken there before this call.)
    pub fn remember(&self, user: i64, known: Known) {
        self.record(user, known, Instant::now(), false);
    }

    /// Records `known`, read at `read_at`. An entry with a higher generation wins over a lower
    /// one while it is trusted, or when it was read later (a log-out here may overtake a read
    /// that started before it).
    fn record(&self, user: i64, known: Known, read_at: Instant, vouchable: bool) {
        if self.ttl.is_zero() {
            return;
        }
        let (ttl, longest) = (self.ttl, self.longest_trust());
        let mut shard = self.shard(user);
        let entries = &mut shard.known;
        if let Some(entry) = entries.get_mut(&user) {
            if let (Known::Generation(held), Known::Generation(new)) = (entry.known, known) {
                if held > new && (entry.read_at.elapsed() < ttl || entry.read_at >= read_at) {
                    entry.refreshing = None;
                    return;
                }
            }
        } else if entries.len() >= GENERATION_SHARD_CAPACITY {
            entries.retain(|_, entry| entry.read_at.elapsed() < longest);
            if entries.len() >= GENERATION_SHARD_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            user,
            Entry {
                read_at,
                known,
                vouchable,
                refreshing: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_is_served_until_it_is_older_than_the_ttl() {
        let ttl = Duration::from_secs(10);
        let copy = Generations::new(ttl);
        let read_ago = |age: Duration| Instant::now().checked_sub(age).expect("uptime > 11 s");
        assert_eq!(copy.lookup(7), Lookup::Missing);
        copy.remember(7, Known::Generation(3));
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(3)));
        copy.record(7, Known::Generation(3), read_ago(ttl * 6 / 10), true);
        assert_eq!(copy.lookup(7), Lookup::Refresh(Known::Generation(3)));
        assert_eq!(
            copy.lookup(7),
            Lookup::Fresh(Known::Generation(3)),
            "one caller refreshes; the others keep using the entry"
        );
        if let Some(entry) = copy.shard(7).known.get_mut(&7) {
            entry.refreshing = Some(read_ago(ttl * 3 / 10));
        }
        assert_eq!(
            copy.lookup(7),
            Lookup::Refresh(Known::Generation(3)),
            "a refresh not back after another quarter (its request was dropped) is taken over"
        );
        copy.record(
            7,
            Known::Generation(3),
            read_ago(ttl + Duration::from_secs(1)),
            true,
        );
        assert_eq!(
            copy.lookup(7),
            Lookup::Missing,
            "an entry as old as the ttl is not trusted"
        );
    }

    #[test]
    fn a_fresh_higher_generation_is_never_lowered() {
        let copy = Generations::new(Duration::from_secs(60));
        copy.remember(7, Known::Generation(4));
        copy.remember(7, Known::Generation(3));
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(4)));
        copy.remember(7, Known::Generation(5));
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(5)));
    }

    /// A copy with a 1 ms ttl (so only the feed can keep an entry) vouched by a fresh feed.
    fn vouched_copy(trust: Duration) -> (Generations, Arc<LogoutFeed>, Keys) {
        let keys = Keys::new("t", 4);
        let feed = Arc::new(LogoutFeed::new(keys.bucket_count()));
        let copy = Generations::new(Duration::from_millis(1)).vouched_by(
            feed.clone(),
            keys.clone(),
            trust,
        );
        (copy, feed, keys)
    }

    #[test]
    fn a_vouched_read_is_trusted_past_the_ttl_until_a_log_out_is_heard() {
        let (copy, feed, keys) = vouched_copy(Duration::from_secs(60));
        let bucket = keys.of_user(7).0;
        copy.load_now(7, Known::Generation(3));
        feed.heard_heartbeat(bucket, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            copy.lookup(7),
            Lookup::Missing,
            "read before the feed's run began: only the ttl applies, and it has passed"
        );
        copy.load_now(7, Known::Generation(3));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(3)));
        feed.heard_heartbeat(bucket, 2);
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(3)));
        feed.heard_logout(bucket);
        copy.raise_heard(7, 4);
        assert_eq!(copy.shard(7).known[&7].known, Known::Generation(4));
        assert_eq!(
            copy.lookup(7),
            Lookup::Missing,
            "a read before a log-out of its bucket is no longer vouched for"
        );
    }

    #[test]
    fn a_vouched_read_is_read_again_by_one_caller_after_half_the_feed_trust() {
        let (copy, feed, keys) = vouched_copy(Duration::from_secs(1));
        let bucket = keys.of_user(7).0;
        feed.heard_heartbeat(bucket, 1);
        copy.load_now(7, Known::Generation(3));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(3)));
        std::thread::sleep(Duration::from_millis(600));
        feed.heard_heartbeat(bucket, 2);
        assert_eq!(copy.lookup(7), Lookup::Refresh(Known::Generation(3)));
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(3)));
    }

    #[test]
    fn a_vouched_read_is_trusted_no_longer_than_the_feed_trust() {
        let (copy, feed, keys) = vouched_copy(Duration::from_millis(2));
        feed.heard_heartbeat(keys.of_user(7).0, 1);
        copy.load_now(7, Known::Generation(3));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(copy.lookup(7), Lookup::Missing);
    }

    #[test]
    fn what_this_instance_wrote_is_never_vouched_for() {
        let (copy, feed, keys) = vouched_copy(Duration::from_secs(60));
        feed.heard_heartbeat(keys.of_user(7).0, 1);
        copy.remember(7, Known::Generation(3));
        assert!(!copy.vouched(7, &copy.shard(7).known[&7]));
        copy.load_now(8, Known::Generation(1));
        assert!(
            !copy.vouched(8, &copy.shard(8).known[&8]),
            "bucket of 8 heard nothing"
        );
        feed.heard_heartbeat(keys.of_user(8).0, 1);
        copy.load_now(8, Known::NoSuchUser);
        assert!(
            !copy.vouched(8, &copy.shard(8).known[&8]),
            "an unknown user is never vouched for (it may sign up)"
        );
        copy.load_now(8, Known::Generation(1));
        assert!(copy.vouched(8, &copy.shard(8).known[&8]));
    }

    #[test]
    fn a_read_that_started_before_a_higher_entry_does_not_lower_it() {
        let (copy, _, _) = vouched_copy(Duration::from_secs(60));
        let earlier = Instant::now()
            .checked_sub(Duration::from_secs(5))
            .expect("uptime > 5 s");
        copy.record(7, Known::Generation(4), Instant::now(), true);
        copy.record(7, Known::Generation(3), earlier, true);
        assert_eq!(copy.shard(7).known[&7].known, Known::Generation(4));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let copy = Generations::new(Duration::ZERO);
        copy.remember(7, Known::Generation(1));
        copy.remember(8, Known::NoSuchUser);
        assert_eq!(copy.lookup(7), Lookup::Missing);
        assert_eq!(copy.lookup(8), Lookup::Missing);
    }

    #[test]
    fn a_full_shard_drops_its_entries_instead_of_growing() {
        let copy = Generations::new(Duration::from_secs(60));
        let same_shard = |n: i64| n * GENERATION_SHARDS as i64;
        for n in 0..GENERATION_SHARD_CAPACITY as i64 {
            copy.remember(same_shard(n), Known::Generation(1));
        }
        copy.remember(same_shard(-1), Known::NoSuchUser);
        assert_eq!(
            copy.lookup(same_shard(-1)),
            Lookup::Fresh(Known::NoSuchUser)
        );
        assert_eq!(
            copy.lookup(same_shard(0)),
            Lookup::Missing,
            "the full shard was emptied"
        );
        assert!(copy.shard(0).known.len() <= GENERATION_SHARD_CAPACITY);
    }

    impl Generations {
        /// Records `known` as a read from Redis that started now.
        fn load_now(&self, user: i64, known: Known) {
            self.record(user, known, Instant::now(), true);
        }
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_user_share_one_load() {
        let copy = Arc::new(Generations::new(Duration::from_secs(60)));
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut waiting = Vec::new();
        for _ in 0..8 {
            let (copy, loads, gate) = (copy.clone(), loads.clone(), gate.clone());
            waiting.push(tokio::spawn(async move {
                copy.load(7, || async move {
                    loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    gate.notified().await;
                    Ok::<_, ()>(Known::Generation(2))
                })
                .await
            }));
        }
        // Every caller is parked behind the one load before it is let go.
        while loads.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for caller in waiting {
            assert_eq!(caller.await.expect("caller"), Ok(Known::Generation(2)));
        }
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(copy.lookup(7), Lookup::Fresh(Known::Generation(2)));
        assert!(
            copy.shard(7).loading.is_empty(),
            "the finished load is forgotten"
        );
    }

    #[tokio::test]
    async fn a_failed_load_fails_its_caller_and_the_next_one_loads_again() {
        let copy = Generations::new(Duration::from_secs(60));
        assert_eq!(
            copy.load(7, || async { Err::<Known, _>("down") }).await,
            Err("down")
        );
        assert_eq!(copy.lookup(7), Lookup::Missing);
        let again = copy
            .load(7, || async { Ok::<_, &str>(Known::NoSuchUser) })
            .await;
        assert_eq!(again, Ok(Known::NoSuchUser));
    }

    #[test]
    fn a_snapshot_is_rendered_once_and_a_new_one_again() {
        let rendered = Rendered::<u32>::default();
        let renders = std::cell::Cell::new(0);
        let render = |value: &u32| {
            renders.set(renders.get() + 1);
            Ok::<_, ()>(value.to_string().into_bytes())
        };
        let first = Arc::new(7);
        assert_eq!(rendered.of(&first, render), Ok("7".into()));
        assert_eq!(rendered.of(&first, render), Ok("7".into()));
        assert_eq!(renders.get(), 1, "the same snapshot is rendered once");
        // An equal value in a new snapshot is a new snapshot: rendered again.
        let second = Arc::new(7);
        assert_eq!(rendered.of(&second, render), Ok("7".into()));
        let third = Arc::new(8);
        assert_eq!(rendered.of(&third, render), Ok("8".into()));
        assert_eq!(renders.get(), 3);
        assert_eq!(
            rendered.of(&first, |_| Err("failed")),
            Err("failed"),
            "a failed rendering is the caller's error"
        );
        assert_eq!(
            rendered.of(&third, render),
            Ok("8".into()),
            "and keeps the last one"
        );
    }
}
