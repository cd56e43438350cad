//! `structure_events`: the record of what happened to workspaces, and the live announcements of it.
//!
//! Every insert is announced on the PostgreSQL channel [`CHANNEL`] by the trigger
//! `structure_events_notify` (see `migrations/*_activity_and_notify.sql`); events that are only
//! broadcast, never stored (heartbeats, task and activity updates), are announced by [`announce`].
//! Every replica's hub listens on that channel, so each event reaches every subscriber.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::StoreError;

/// The `LISTEN`/`NOTIFY` channel of the live event stream.
pub const CHANNEL: &str = "structure_events";

/// How many events a listing returns at most (the original's `LIMIT 100`).
pub const LIST_LIMIT: i64 = 100;

/// NOTIFY payloads must stay under 8000 bytes; a larger announcement carries only an id.
const MAX_ANNOUNCEMENT_BYTES: usize = 7000;

/// One row of `structure_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: Uuid,
    pub event_type: String,
    pub workspace_id: Option<Uuid>,
    pub payload: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Records one event (`WORKSPACE_PROVISIONING`, `WORKSPACE_REMOVED`, …). Subscribers of the live
/// stream hear of it through PostgreSQL `NOTIFY`.
pub async fn record(
    executor: impl PgExecutor<'_>,
    event_type: &str,
    workspace_id: Option<Uuid>,
    payload: &serde_json::Value,
) -> Result<Uuid, StoreError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO structure_events (event_type, workspace_id, payload) VALUES ($1, $2, $3) RETURNING id",
        event_type,
        workspace_id,
        payload
    )
    .fetch_one(executor)
    .await?;
    Ok(id)
}

/// The newest events first, at most [`LIST_LIMIT`], optionally of one workspace only.
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace_id: Option<Uuid>,
) -> Result<Vec<EventRow>, StoreError> {
    let rows = sqlx::query_as!(
        EventRow,
        r#"SELECT id, event_type, workspace_id, payload, created_at AS "created_at!"
           FROM structure_events
           WHERE $1::uuid IS NULL OR workspace_id = $1
           ORDER BY created_at DESC
           LIMIT $2"#,
        workspace_id,
        LIST_LIMIT
    )
    .fetch_all(executor)
    .await?;
    Ok(rows)
}

/// One event by id (the hub fetches events whose announcement was too large to carry them).
pub async fn get(executor: impl PgExecutor<'_>, id: Uuid) -> Result<Option<EventRow>, StoreError> {
    let row = sqlx::query_as!(
        EventRow,
        r#"SELECT id, event_type, workspace_id, payload, created_at AS "created_at!"
           FROM structure_events WHERE id = $1"#,
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row)
}

/// A round trip on the listening connection, so a silently dead one is noticed (an idle listener
/// otherwise waits forever on a connection the network dropped without a reset).
pub async fn ping(executor: impl PgExecutor<'_>) -> Result<(), StoreError> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(executor)
        .await?;
    Ok(())
}

/// How long a large announcement's payload is kept for the replicas' hubs to load it.
const LARGE_ANNOUNCEMENT_TTL_SECONDS: f64 = 600.0;

/// Announces an event to every replica's live subscribers without storing it as an event (the
/// original's `BroadcastOnly`: heartbeats, task and activity updates, agent replies). A payload too
/// large for NOTIFY is kept in `large_announcements` and announced by id; each hub loads it.
pub async fn announce(
    executor: impl PgExecutor<'_>,
    event_type: &str,
    workspace_id: Uuid,
    payload: &serde_json::Value,
) -> Result<(), StoreError> {
    let message = serde_json::json!({
        "event_type": event_type,
        "workspace_id": workspace_id,
        "payload": payload,
        "created_at": Utc::now(),
    });
    if message.to_string().len() <= MAX_ANNOUNCEMENT_BYTES {
        sqlx::query!("SELECT pg_notify($1, $2)", CHANNEL, message.to_string())
            .execute(executor)
            .await?;
        return Ok(());
    }
    // One statement: prune expired payloads, keep this one, announce its id.
    sqlx::query!(
        "WITH expired AS (
           DELETE FROM large_announcements
           WHERE created_at < now() - make_interval(secs => $5)
         ), kept AS (
           INSERT INTO large_announcements (event_type, workspace_id, payload)
           VALUES ($2, $3, $4) RETURNING id
         )
         SELECT pg_notify($1, json_build_object('large_id', id)::text) FROM kept",
        CHANNEL,
        event_type,
        workspace_id,
        payload,
        LARGE_ANNOUNCEMENT_TTL_SECONDS
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Announces several events in order, as [`announce`] does one: the small ones in one statement,
/// a large one through [`announce`]. The connection is borrowed for each statement, so pass a
/// transaction to announce them all at its commit.
pub async fn announce_many(
    connection: &mut sqlx::PgConnection,
    events: &[(&str, Uuid, &serde_json::Value)],
) -> Result<(), StoreError> {
    let now = Utc::now();
    let mut small = Vec::with_capacity(events.len());
    for (event_type, workspace_id, payload) in events {
        let message = serde_json::json!({
            "event_type": event_type,
            "workspace_id": workspace_id,
            "payload": payload,
            "created_at": now,
        })
        .to_string();
        if message.len() <= MAX_ANNOUNCEMENT_BYTES {
            small.push(message);
            continue;
        }
        flush_small(&mut *connection, &mut small).await?;
        announce(&mut *connection, event_type, *workspace_id, payload).await?;
    }
    flush_small(connection, &mut small).await
}

async fn flush_small(
    executor: impl PgExecutor<'_>,
    messages: &mut Vec<String>,
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
        CHANNEL,
        messages.as_slice()
    )
    .execute(executor)
    .await?;
    messages.clear();
    Ok(())
}

/// A large announcement's event, by the id its announcement carried.
pub async fn large_announcement(
    executor: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<AnnouncedEvent>, StoreError> {
    let row = sqlx::query!(
        "SELECT event_type, workspace_id, payload, created_at FROM large_announcements WHERE id = $1",
        id
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| AnnouncedEvent {
        event_type: row.event_type,
        workspace_id: Some(row.workspace_id),
        payload: Some(row.payload),
        created_at: row.created_at,
    }))
}

/// An announcement as received on [`CHANNEL`].
#[derive(Debug, Clone, PartialEq)]
pub enum Announcement {
    /// The whole event.
    Event(AnnouncedEvent),
    /// Only the id of a stored event too large to announce: fetch it with [`get`].
    StoredId(Uuid),
    /// Only the id of an unstored event too large to announce: fetch it with
    /// [`large_announcement`].
    LargeId(Uuid),
}

#[derive(Deserialize)]
struct Wire {
    id: Option<Uuid>,
    large_id: Option<Uuid>,
    event_type: Option<String>,
    workspace_id: Option<Uuid>,
    payload: Option<serde_json::Value>,
    created_at: Option<DateTime<Utc>>,
}

impl Announcement {
    /// Parses a NOTIFY payload; `None` when it is not one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        let wire: Wire = serde_json::from_str(text).ok()?;
        if let Some(id) = wire.large_id {
            return Some(Self::LargeId(id));
        }
        match (wire.event_type, wire.created_at, wire.id) {
            (Some(event_type), Some(created_at), _) => Some(Self::Event(AnnouncedEvent {
                event_type,
                workspace_id: wire.workspace_id,
                payload: wire.payload,
                created_at,
            })),
            (_, _, Some(id)) => Some(Self::StoredId(id)),
            _ => None,
        }
    }
}

/// An event as subscribers of the live stream see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnouncedEvent {
    pub event_type: String,
    pub workspace_id: Option<Uuid>,
    pub payload: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl From<EventRow> for AnnouncedEvent {
    fn from(row: EventRow) -> Self {
        Self {
            event_type: row.event_type,
            workspace_id: row.workspace_id,
            payload: row.payload,
            created_at: row.created_at,
        }
    }
}
