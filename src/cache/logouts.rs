//! The log-out feed's Redis side: a subscriber listening to every bucket's `{b}:logouts` shard
//! channel (SSUBSCRIBE, so on a Cluster each channel is served by the node that owns its slot,
//! the node where `session_gen.lua` announces the bucket's log-outs), and this instance's
//! numbered heartbeats on the same channels. What it hears goes into [`LogoutFeed`] and the
//! copy of token generations; [`crate::logout_feed`] says why that lets the copy be trusted.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Cache;
use crate::local::Generations;
use crate::logout_feed::{LogoutFeed, HEARTBEAT_EVERY};

/// Messages the subscriber may hold before this instance reads them; one that falls further
/// behind breaks the feed (nothing is vouched for until the next heartbeat).
const BACKLOG: usize = 4_096;

/// What a message on a log-out channel says.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// `raise <userId> <generation>`: a log-out (session_gen.lua).
    Logout { user: i64, generation: i64 },
    /// `beat <instance> <n>`: an instance's n-th heartbeat.
    Heartbeat { instance: String, number: u64 },
}

fn parse(text: &str) -> Option<Heard> {
    let mut words = text.split(' ');
    let heard = match (words.next()?, words.next()?, words.next()?) {
        ("raise", user, generation) => Heard::Logout {
            user: user.parse().ok()?,
            generation: generation.parse().ok()?,
        },
        ("beat", instance, number) => Heard::Heartbeat {
            instance: instance.to_owned(),
            number: number.parse().ok()?,
        },
        _ => return None,
    };
    words.next().is_none().then_some(heard)
}

/// Subscribes to every bucket's log-out channel and starts this instance's heartbeats there;
/// both run until `shutdown`. Fails if the subscriptions cannot be made.
pub async fn start(
    url: &str,
    cache: Cache,
    feed: Arc<LogoutFeed>,
    generations: Arc<Generations>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subscriber = super::builder(url)?
        // `CLIENT LIST` names the feed's connections (its id, logged below).
        .with_connection_config(|c| c.auto_client_setname = true)
        .with_performance_config(|p| p.broadcast_channel_capacity = BACKLOG)
        .build_subscriber_client()
        .context("failed to build the log-out subscriber")?;
    // Listening before connecting: no event of the first connection is missed.
    let listener = Listener {
        messages: subscriber.message_rx(),
        reconnects: subscriber.reconnect_rx(),
        unresponsive: subscriber.unresponsive_rx(),
        cluster_changes: subscriber.cluster_change_rx(),
        buckets: cache
            .keys
            .buckets()
            .map(|b| (cache.keys.logouts(b), b.0))
            .collect(),
        instance: uuid::Uuid::new_v4().simple().to_string(),
        feed,
        generations,
    };
    subscriber
        .init()
        .await
        .context("failed to connect the log-out subscriber")?;
    // Re-subscribes after every reconnection (each of which breaks the feed until then).
    let _resubscribing = subscriber.manage_subscriptions();
    for channel in listener.buckets.keys() {
        subscriber
            .ssubscribe(channel.as_str())
            .await
            .with_context(|| format!("failed to subscribe to {channel}"))?;
    }
    tracing::info!(
        connection_name = %subscriber.id(),
        channels = listener.buckets.len(),
        "log-out feed subscribed"
    );
    tokio::spawn(heartbeats(
        cache,
        listener.instance.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(listener.run(subscriber, shutdown));
    Ok(())
}

/// Reads what the subscriber hears.
struct Listener {
    messages: tokio::sync::broadcast::Receiver<Message>,
    reconnects: tokio::sync::broadcast::Receiver<Server>,
    unresponsive: tokio::sync::broadcast::Receiver<Server>,
    cluster_changes: tokio::sync::broadcast::Receiver<Vec<fred::types::ClusterStateChange>>,
    /// Channel name → bucket index.
    buckets: HashMap<String, u16>,
    /// This instance's name in its heartbeats.
    instance: String,
    feed: Arc<LogoutFeed>,
    generations: Arc<Generations>,
}

impl Listener {
    async fn run(mut self, subscriber: SubscriberClient, shutdown: CancellationToken) {
        loop {
            // Connection events first: a reconnection is announced before the subscriptions
            // are made again, so it is always seen before the first message after it.
            let went_on = tokio::select! {
                biased;
                _ = shutdown.cancelled() => false,
                event = self.reconnects.recv() => self.connection_event("reconnected", event),
                event = self.unresponsive.recv() => self.connection_event("unresponsive", event),
                event = self.cluster_changes.recv() => {
                    self.connection_event("cluster changed", event)
                }
                message = self.messages.recv() => match message {
                    Ok(message) => {
                        self.heard(&message);
                        true
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "log-out feed fell behind; trusting Redis only");
                        self.feed.broken();
                        true
                    }
                    Err(RecvError::Closed) => false,
                },
            };
            if !went_on {
                break;
            }
        }
        self.feed.broken();
        let _ = subscriber.quit().await;
    }

    /// A connection event (or a lagged channel of them): something may have been missed.
    /// Returns whether to go on listening (not once the client has closed its channels).
    fn connection_event<T>(&mut self, what: &'static str, event: Result<T, RecvError>) -> bool {
        self.feed.broken();
        match event {
            Ok(_) => tracing::debug!(what, "log-out feed broken until the next heartbeat"),
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return false,
        }
        true
    }

    fn heard(&self, message: &Message) {
        let Some(&bucket) = self.buckets.get(&*message.channel) else {
            return;
        };
        let Some(heard) = message.value.as_str().as_deref().and_then(parse) else {
            tracing::warn!(channel = %message.channel, "unreadable log-out message");
            return;
        };
        match heard {
            Heard::Logout { user, generation } => {
                self.feed.heard_logout(bucket);
                self.generations.raise_heard(user, generation);
            }
            Heard::Heartbeat { instance, number } if instance == self.instance => {
                self.feed.heard_heartbeat(bucket, number);
            }
            Heard::Heartbeat { .. } => {}
        }
    }
}

/// Publishes this instance's heartbeat `n` on every bucket's channel every
/// [`HEARTBEAT_EVERY`], `n` counting up; a failed publish shows as a missed heartbeat.
async fn heartbeats(cache: Cache, instance: String, shutdown: CancellationToken) {
    let channels: Vec<String> = cache
        .keys
        .buckets()
        .map(|b| cache.keys.logouts(b))
        .collect();
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for number in 0u64.. {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let message = format!("beat {instance} {number}");
        let sent = channels.iter().map(|channel| {
            cache
                .client()
                .spublish::<i64, _, _>(channel.as_str(), message.as_str())
        });
        let failed = futures::future::join_all(sent)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count();
        if failed > 0 {
            tracing::debug!(failed, "log-out feed heartbeats not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Keys;

    #[test]
    fn messages_parse_and_anything_else_is_ignored() {
        assert_eq!(
            parse("raise 7 3"),
            Some(Heard::Logout {
                user: 7,
                generation: 3
            })
        );
        assert_eq!(
            parse("beat abc 12"),
            Some(Heard::Heartbeat {
                instance: "abc".into(),
                number: 12
            })
        );
        for bad in [
            "",
            "raise 7",
            "raise x 3",
            "beat abc -1",
            "beat a 1 2",
            "hello a b",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_bucket_has_its_own_channel() {
        let keys = Keys::new("t", 16);
        let channels: std::collections::HashSet<String> =
            keys.buckets().map(|b| keys.logouts(b)).collect();
        assert_eq!(channels.len(), 16);
    }
}
