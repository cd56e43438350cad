//! The live event stream: one `LISTEN structure_events` connection per process, fanned out to
//! this process's subscribers (`GET /ws`).
//!
//! Events reach PostgreSQL from any replica (the insert trigger, or `store::events::announce`), so
//! every replica's subscribers see every event. A subscriber that falls behind skips what it
//! missed rather than slowing the others down; the canvas re-reads `GET /workspaces` anyway.
//!
//! The same connection also listens on `workspace_changed`, which keeps this process's
//! [`WorkspaceCache`] exact: the cache is in use only while this connection is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use store::events::{AnnouncedEvent, Announcement};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::liveness::Liveness;
use crate::workspace_cache::{self, WorkspaceCache};

/// How many events a slow subscriber may lag before it skips ahead.
const SUBSCRIBER_BUFFER: usize = 1024;
/// Reconnect backoff after the listening connection fails.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the listener checks its connection with a round trip and reports itself alive.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(10);
/// A connection that does not answer the check within this is treated as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// The name under which the listener shows in `GET /admin/liveness`.
pub const LIVENESS_NAME: &str = "events-hub";

/// One event as the canvas's socket receives it (the original's `WSMessage`, in its field order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveEvent {
    pub event: String,
    /// `""` for events about no workspace.
    pub workspace_id: String,
    #[serde(serialize_with = "crate::json::go_time")]
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub payload: serde_json::Value,
}

impl LiveEvent {
    /// The workspace the event is about.
    pub fn workspace(&self) -> Option<Uuid> {
        self.workspace_id.parse().ok()
    }
}

impl From<AnnouncedEvent> for LiveEvent {
    fn from(event: AnnouncedEvent) -> Self {
        Self {
            event: event.event_type,
            workspace_id: event
                .workspace_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            timestamp: event.created_at,
            payload: event.payload.unwrap_or(serde_json::Value::Null),
        }
    }
}

enum ListenEnd {
    Shutdown,
    ConnectionLost,
}

/// The process's broadcaster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventsHub {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    /// Cancelled on shutdown: the listener and every socket stop.
    shutdown: CancellationToken,
    /// `GET /workspaces/{id}`'s cache, invalidated by this hub's listener.
    workspace_cache: WorkspaceCache,
    /// When each workspace was last the subject of an event: the A2A proxy's idle watch reads it
    /// when its window ends instead of waking on every event of the process.
    last_seen: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

/// Above this many workspaces, [`EventsHub::publish`] forgets those silent for a day.
const LAST_SEEN_CAPACITY: usize = 10_000;
const LAST_SEEN_KEPT: Duration = Duration::from_secs(24 * 3600);

impl Default for EventsHub {
    fn default() -> Self {
        Self::new(CancellationToken::new())
    }
}

impl EventsHub {
    /// A hub whose listener and sockets stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        Self {
            sender,
            shutdown,
            workspace_cache: WorkspaceCache::default(),
            last_seen: Arc::default(),
        }
    }

    /// When `workspace` was last the subject of a published event.
    pub fn last_seen(&self, workspace: Uuid) -> Option<Instant> {
        self.seen().get(&workspace).copied()
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
        // Every update is one statement: a poisoned lock still holds consistent data.
        self.last_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cache of `GET /workspaces/{id}`; bypassed until [`Self::spawn_listener`]'s listener
    /// is connected.
    pub fn workspace_cache(&self) -> &WorkspaceCache {
        &self.workspace_cache
    }

    /// A new subscriber; it receives every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// Cancelled when the server shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Delivers an event to this process's subscribers only.
    pub fn publish(&self, event: LiveEvent) {
        if let Some(workspace) = event.workspace() {
            let now = Instant::now();
            let mut seen = self.seen();
            if seen.len() >= LAST_SEEN_CAPACITY && !seen.contains_key(&workspace) {
                seen.retain(|_, at| now.duration_since(*at) < LAST_SEEN_KEPT);
            }
            seen.insert(workspace, now);
        }
        // No subscriber is not an error: the event is stored anyway.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Starts the listening task; it reconnects with backoff and stops on shutdown.
    pub fn spawn_listener(&self, pool: PgPool, liveness: Liveness) -> JoinHandle<()> {
        tokio::spawn(self.listener(pool, liveness))
    }

    /// The listening task's future, for a caller that tracks its tasks itself.
    pub fn listener(
        &self,
        pool: PgPool,
        liveness: Liveness,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.clone().listen_until_shutdown(pool, liveness)
    }

    async fn listen_until_shutdown(self, pool: PgPool, liveness: Liveness) {
        let mut backoff = BACKOFF_START;
        loop {
            match self.listen(&pool, &liveness).await {
                Ok(ListenEnd::Shutdown) => return,
                // It was listening: the next failure starts the backoff afresh.
                Ok(ListenEnd::ConnectionLost) => {
                    tracing::warn!(
                        "event stream connection lost; events announced meanwhile are missed"
                    );
                    backoff = BACKOFF_START;
                }
                Err(error) => {
                    tracing::warn!(error = %error, retry_in = ?backoff, "event stream listener failed");
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Listens until shutdown or until the connection drops.
    async fn listen(&self, pool: &PgPool, liveness: &Liveness) -> Result<ListenEnd, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([store::events::CHANNEL, workspace_cache::CHANNEL])
            .await?;
        // Dropped on every way out of this function, which bypasses the cache again.
        let _cache_in_use = self.workspace_cache.start_listening();
        // Debug: a healthy start logs only what a person needs; `/admin/liveness` shows the loop.
        tracing::debug!(channel = store::events::CHANNEL, "event stream listening");
        liveness.tick(LIVENESS_NAME);
        let mut heartbeat = tokio::time::interval(LIVENESS_INTERVAL);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(ListenEnd::Shutdown),
                _ = heartbeat.tick() => {
                    // Bounds how long a silently dead connection keeps the cache in use.
                    let ping = store::events::ping(&mut listener);
                    if !matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(()))) {
                        return Ok(ListenEnd::ConnectionLost);
                    }
                    liveness.tick(LIVENESS_NAME);
                }
                // `try_recv` reports a lost connection (`None`) instead of silently reconnecting.
                notification = listener.try_recv() => match notification? {
                    Some(notification) if notification.channel() == workspace_cache::CHANNEL => {
                        self.workspace_cache.invalidate_announced(notification.payload());
                    }
                    Some(notification) => self.relay(pool, notification.payload()).await,
                    None => return Ok(ListenEnd::ConnectionLost),
                },
            }
        }
    }

    /// Publishes what one notification announces (several events when a writer packed them).
    async fn relay(&self, pool: &PgPool, text: &str) {
        let announcements = Announcement::parse_all(text);
        if announcements.is_empty() {
            tracing::debug!("ignoring a foreign notification on the event channel");
        }
        for announcement in announcements {
            self.relay_one(pool, announcement).await;
        }
    }

    async fn relay_one(&self, pool: &PgPool, announcement: Announcement) {
        let event = match announcement {
            Announcement::Event(event) => event,
            Announcement::StoredId(id) => match store::events::get(pool, id).await {
                Ok(Some(row)) => row.into(),
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = %error, event_id = %id, "cannot fetch an announced event");
                    return;
                }
            },
            Announcement::LargeId(id) => match store::events::large_announcement(pool, id).await {
                Ok(Some(event)) => event,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = %error, event_id = %id, "cannot fetch a large announcement");
                    return;
                }
            },
        };
        self.publish(event.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn live_event_has_the_original_wire_shape() {
        let event = LiveEvent {
            event: "WORKSPACE_ONLINE".into(),
            workspace_id: String::new(),
            timestamp: chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            payload: serde_json::json!({"url": "http://x"}),
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"event":"WORKSPACE_ONLINE","workspace_id":"","timestamp":"2026-01-02T03:04:05Z","payload":{"url":"http://x"}}"#
        );
    }

    #[tokio::test]
    async fn published_events_reach_every_subscriber() {
        let hub = EventsHub::default();
        let mut first = hub.subscribe();
        let mut second = hub.clone().subscribe();
        hub.publish(LiveEvent {
            event: "X".into(),
            workspace_id: String::new(),
            timestamp: chrono::Utc::now(),
            payload: serde_json::Value::Null,
        });
        assert_eq!(first.recv().await.unwrap().event, "X");
        assert_eq!(second.recv().await.unwrap().event, "X");
    }
}
