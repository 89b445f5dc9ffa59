//! Group commit: concurrent requests of one kind that reach this instance while Redis is busy
//! with earlier ones go to Redis together, as one script call that decides each of them in
//! arrival order, so the per-call cost (round trip, syscalls, AOF write and fsync, `WAIT` for
//! replicas) is paid once per batch instead of once per request.
//!
//! No timer is involved: at most `in_flight` batches are at Redis at once, and whatever queued
//! while they were busy (up to `max` requests) becomes the next batch. An idle instance therefore
//! sends a lone request at once, and a loaded one sends larger batches exactly when one call per
//! request would fall behind. Each request gets its own outcome; a batch whose call fails fails
//! each of its requests with that error (a dependency failure stays a 503, see
//! [`crate::dependency`]). A request whose caller has gone (timed out, disconnected) before its
//! batch is formed is not decided at all. With `max == 1` there is no queue: each request is
//! one call of its own, made by the caller's task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

/// How large batches may grow and how many may be at Redis at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most requests in one call (at least 1).
    pub max: usize,
    /// Batches sent and not yet answered, at most (at least 1).
    pub in_flight: usize,
}

impl BatchLimits {
    /// The limits of `REDIS_BATCH_MAX` and `REDIS_BATCHES_IN_FLIGHT`.
    pub fn of(redis: &crate::config::RedisConfig) -> Self {
        Self {
            max: redis.batch_max,
            in_flight: redis.batches_in_flight,
        }
    }
}

/// Requests queued beyond this wait in `submit` (the HTTP layer bounds them long before).
const QUEUE_CAPACITY: usize = 4096;

/// One queued request and where its outcome goes.
struct Pending<Req, Out> {
    request: Req,
    answer: oneshot::Sender<Result<Out, BatchFailed>>,
}

/// One call deciding a batch (its requests in arrival order), type-erased.
type Decide<Req, Out> = Arc<
    dyn Fn(Vec<Req>) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Out>>> + Send>>
        + Send
        + Sync,
>;

/// The handle requests are submitted through; cheap to clone. The gathering task ends when the
/// last handle is dropped.
pub struct Batcher<Req, Out> {
    name: &'static str,
    route: Route<Req, Out>,
}

/// Where [`Batcher::submit`] sends a request.
enum Route<Req, Out> {
    /// To the gathering task, which forms batches.
    Queue(mpsc::Sender<Pending<Req, Out>>),
    /// Straight to Redis as a call of one (`max == 1`).
    Direct(Decide<Req, Out>),
}

impl<Req, Out> Clone for Batcher<Req, Out> {
    fn clone(&self) -> Self {
        let route = match &self.route {
            Route::Queue(queue) => Route::Queue(queue.clone()),
            Route::Direct(decide) => Route::Direct(decide.clone()),
        };
        Self {
            name: self.name,
            route,
        }
    }
}

/// The error every request of a failed batch gets: the batch's cause, shared, whose cause chain
/// stays visible to [`crate::dependency::is_dependency_failure`].
#[derive(Debug, Clone)]
pub struct BatchFailed {
    name: &'static str,
    size: usize,
    cause: Arc<anyhow::Error>,
}

impl std::fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a batch of {} {} requests failed", self.size, self.name)
    }
}

impl std::error::Error for BatchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let cause: &(dyn std::error::Error + Send + Sync + 'static) = (*self.cause).as_ref();
        Some(cause)
    }
}

impl<Req, Out> Batcher<Req, Out>
where
    Req: Send + 'static,
    Out: Send + 'static,
{
    /// Starts the gathering task (none when `limits.max == 1`); `decide` runs one batch (its
    /// requests in arrival order) and must return one outcome per request, in the same order.
    /// `name` labels the `redis_batch_size` histogram and errors.
    pub fn start<F, Fut>(name: &'static str, limits: BatchLimits, decide: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Out>>> + Send + 'static,
    {
        let decide: Decide<Req, Out> = Arc::new(move |requests| Box::pin(decide(requests)));
        let route = if limits.max <= 1 {
            Route::Direct(decide)
        } else {
            let (queue, incoming) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(gather(name, limits, incoming, decide));
            Route::Queue(queue)
        };
        Self { name, route }
    }

    /// Decides `request` in the next batch (or in a call of its own) and returns its outcome.
    pub async fn submit(&self, request: Req) -> anyhow::Result<Out> {
        let queue = match &self.route {
            Route::Queue(queue) => queue,
            Route::Direct(decide) => {
                let mut outcomes = one_per_request(self.name, 1, decide(vec![request]).await?)?;
                return Ok(outcomes.swap_remove(0));
            }
        };
        let (answer, outcome) = oneshot::channel();
        queue
            .send(Pending { request, answer })
            .await
            .map_err(|_| anyhow::anyhow!("the {} batcher has stopped", self.name))?;
        match outcome.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(failed)) => Err(failed.into()),
            Err(_) => Err(anyhow::anyhow!(
                "the {} batch holding this request was abandoned",
                self.name
            )),
        }
    }
}

/// `outcomes` if there is one per request of a batch of `size`, else an error.
fn one_per_request<Out>(
    name: &'static str,
    size: usize,
    outcomes: Vec<Out>,
) -> anyhow::Result<Vec<Out>> {
    anyhow::ensure!(
        outcomes.len() == size,
        "{name}: {} outcomes for a batch of {size}",
        outcomes.len()
    );
    Ok(outcomes)
}

/// Forms batches from the queue and sends each on its own task, at most `limits.in_flight` at
/// once.
async fn gather<Req, Out>(
    name: &'static str,
    limits: BatchLimits,
    mut incoming: mpsc::Receiver<Pending<Req, Out>>,
    decide: Decide<Req, Out>,
) where
    Req: Send + 'static,
    Out: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.in_flight.max(1)));
    let max = limits.max.max(1);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = incoming.recv().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max.min(64));
        batch.push(first);
        while batch.len() < max {
            match incoming.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        batch.retain(|pending| !pending.answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        let decide = decide.clone();
        tokio::spawn(async move {
            answer_batch(name, batch, &decide).await;
            drop(slot);
        });
    }
}

/// Runs one batch and hands each request its outcome (or the batch's error).
async fn answer_batch<Req, Out>(
    name: &'static str,
    batch: Vec<Pending<Req, Out>>,
    decide: &Decide<Req, Out>,
) {
    let size = batch.len();
    if name.ends_with(".lua") {
        // Redis scripts' batch sizes; other batchers (the settlement's merged commits) record
        // figures of their own.
        metrics::histogram!("redis_batch_size", "script" => name).record(size as f64);
    }
    let (requests, answers): (Vec<Req>, Vec<_>) = batch
        .into_iter()
        .map(|pending| (pending.request, pending.answer))
        .unzip();
    match decide(requests)
        .await
        .and_then(|outcomes| one_per_request(name, size, outcomes))
    {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(Ok(outcome));
            }
        }
        Err(error) => {
            let cause = Arc::new(error);
            for answer in answers {
                let _ = answer.send(Err(BatchFailed {
                    name,
                    size,
                    cause: cause.clone(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A batcher whose "Redis" answers each request with (request, batch size) after a pause,
    /// recording the batch sizes it saw.
    fn echo(
        max: usize,
        in_flight: usize,
        seen: Arc<std::sync::Mutex<Vec<usize>>>,
    ) -> Batcher<u32, (u32, usize)> {
        Batcher::start(
            "echo",
            BatchLimits { max, in_flight },
            move |requests: Vec<u32>| {
                let seen = seen.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let n = requests.len();
                    seen.lock().expect("lock").push(n);
                    Ok(requests.into_iter().map(|r| (r, n)).collect())
                }
            },
        )
    }

    #[tokio::test]
    async fn a_lone_request_goes_alone_and_gets_its_own_answer() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let batcher = echo(8, 1, seen.clone());
        assert_eq!(batcher.submit(7).await.expect("answer"), (7, 1));
        assert_eq!(*seen.lock().expect("lock"), vec![1]);
    }

    #[tokio::test]
    async fn requests_that_queue_behind_a_busy_call_form_batches_of_at_most_max_in_order() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let batcher = echo(4, 1, seen.clone());
        let answers = futures::future::join_all((0..10u32).map(|r| batcher.submit(r))).await;
        for (r, answer) in answers.into_iter().enumerate() {
            let (echoed, size) = answer.expect("answer");
            assert_eq!(echoed as usize, r, "each request gets its own outcome");
            assert!((1..=4).contains(&size), "batch of {size}");
        }
        let sizes = seen.lock().expect("lock").clone();
        assert_eq!(
            sizes.iter().sum::<usize>(),
            10,
            "every request decided once: {sizes:?}"
        );
        assert!(sizes.iter().all(|&n| n <= 4), "{sizes:?}");
        assert!(sizes.len() < 10, "queued requests shared calls: {sizes:?}");
    }

    #[tokio::test]
    async fn with_batches_of_one_each_request_is_a_call_of_its_own() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let batcher = echo(1, 1, seen.clone());
        let answers = futures::future::join_all((0..5u32).map(|r| batcher.submit(r))).await;
        for (r, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.expect("answer"), (r as u32, 1));
        }
        assert_eq!(*seen.lock().expect("lock"), vec![1; 5]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_request_with_the_cause_kept() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let batcher: Batcher<u32, u32> = Batcher::start(
            "failing",
            BatchLimits {
                max: 8,
                in_flight: 1,
            },
            move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(anyhow::Error::new(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "redis went away",
                    )))
                }
            },
        );
        let answers = futures::future::join_all((0..5u32).map(|r| batcher.submit(r))).await;
        for answer in answers {
            let error = answer.expect_err("the batch failed");
            assert!(
                crate::dependency::is_dependency_failure(&error),
                "an I/O cause stays a dependency failure: {error:#}"
            );
            assert!(
                format!("{error:#}").contains("redis went away"),
                "{error:#}"
            );
        }
        assert!(calls.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn a_request_whose_caller_left_before_its_batch_formed_is_not_decided() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let batcher = echo(8, 1, seen.clone());
        let busy = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(1).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Queued behind the busy call, then abandoned before that call returns.
        let abandoned = tokio::time::timeout(Duration::from_millis(1), batcher.submit(2)).await;
        assert!(abandoned.is_err(), "gave up while queued");
        assert_eq!(batcher.submit(3).await.expect("answer"), (3, 1));
        busy.await.expect("join").expect("answer");
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![1, 1],
            "request 2 never reached Redis"
        );
    }
}
