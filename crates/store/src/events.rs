//! `structure_events`: the record of what happened to workspaces, and the live announcements of it.
//!
//! Every insert is announced on the PostgreSQL channel [`CHANNEL`] by the trigger
//! `structure_events_notify` (see `migrations/*_activity_and_notify.sql`); events that are only
//! broadcast, never stored (heartbeats, task and activity updates), are announced by [`announce`].
//! Every replica's hub listens on that channel, so each event reaches every subscriber.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
    payload: &RawValue,
) -> Result<(), StoreError> {
    let message = Message {
        event_type,
        workspace_id,
        payload,
        created_at: Utc::now(),
    }
    .text();
    if message.len() <= MAX_ANNOUNCEMENT_BYTES {
        sqlx::query!("SELECT pg_notify($1, $2)", CHANNEL, message)
            .execute(executor)
            .await?;
        return Ok(());
    }
    announce_large(executor, event_type, workspace_id, payload.get()).await
}

/// Keeps a payload too large for NOTIFY in `large_announcements` and announces its id, in one
/// statement that also prunes expired payloads.
async fn announce_large(
    executor: impl PgExecutor<'_>,
    event_type: &str,
    workspace_id: Uuid,
    payload: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "WITH expired AS (
           DELETE FROM large_announcements
           WHERE created_at < now() - make_interval(secs => $5)
         ), kept AS (
           INSERT INTO large_announcements (event_type, workspace_id, payload)
           VALUES ($2, $3, $4::text::jsonb) RETURNING id
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

/// Announces several events in order, as [`announce`] does one, from payloads already in JSON text
/// (a busy writer builds no JSON trees). Small announcements are packed into as few NOTIFY
/// payloads as fit (a JSON array of them: fewer notifications for PostgreSQL to queue and every
/// listener to read); a large one goes through `large_announcements`. The connection is borrowed
/// for each statement, so pass a transaction to announce them all at its commit.
pub async fn announce_many(
    connection: &mut sqlx::PgConnection,
    events: &[(&str, Uuid, &RawValue)],
) -> Result<(), StoreError> {
    let now = Utc::now();
    let mut packets = Vec::new();
    let mut packet = String::new();
    for (event_type, workspace_id, payload) in events {
        let message = Message {
            event_type,
            workspace_id: *workspace_id,
            payload,
            created_at: now,
        }
        .text();
        if message.len() > MAX_ANNOUNCEMENT_BYTES {
            close_packet(&mut packet, &mut packets);
            flush_packets(&mut *connection, &mut packets).await?;
            announce_large(&mut *connection, event_type, *workspace_id, payload.get()).await?;
            continue;
        }
        // `[` + messages joined by `,` + `]`.
        if !packet.is_empty() && packet.len() + message.len() + 2 > MAX_ANNOUNCEMENT_BYTES {
            close_packet(&mut packet, &mut packets);
        }
        packet.push(if packet.is_empty() { '[' } else { ',' });
        packet.push_str(&message);
    }
    close_packet(&mut packet, &mut packets);
    flush_packets(connection, &mut packets).await
}

/// One announcement on [`CHANNEL`], as [`Announcement::parse_all`] reads it.
#[derive(Serialize)]
struct Message<'a> {
    event_type: &'a str,
    workspace_id: Uuid,
    payload: &'a RawValue,
    created_at: DateTime<Utc>,
}

impl Message<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).expect("text, a uuid, a time and JSON text serialize")
    }
}

fn close_packet(packet: &mut String, packets: &mut Vec<String>) {
    if !packet.is_empty() {
        packet.push(']');
        packets.push(std::mem::take(packet));
    }
}

async fn flush_packets(
    executor: impl PgExecutor<'_>,
    packets: &mut Vec<String>,
) -> Result<(), StoreError> {
    if packets.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m",
        CHANNEL,
        packets.as_slice()
    )
    .execute(executor)
    .await?;
    packets.clear();
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
    /// Parses a NOTIFY payload that may pack several announcements, in their order; empty when
    /// it is not ours.
    pub fn parse_all(text: &str) -> Vec<Self> {
        // One announcement, or an array of them packed by [`announce_many`]: told apart by the
        // first character rather than by an untagged enum, which would buffer the whole payload
        // and parse it twice.
        if text.trim_start().starts_with('[') {
            serde_json::from_str::<Vec<Wire>>(text)
                .map(|wires| wires.into_iter().filter_map(Self::of).collect())
                .unwrap_or_default()
        } else {
            serde_json::from_str::<Wire>(text)
                .ok()
                .and_then(Self::of)
                .into_iter()
                .collect()
        }
    }

    fn of(wire: Wire) -> Option<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_notification_gives_its_announcements_in_order() {
        let id = Uuid::new_v4();
        let text = format!(
            r#"[{{"event_type":"A","workspace_id":"{id}","payload":{{"n":1}},"created_at":"2026-01-01T00:00:00Z"}},
                {{"large_id":"{id}"}},
                {{"event_type":"B","workspace_id":null,"payload":null,"created_at":"2026-01-01T00:00:01Z"}}]"#
        );
        let parsed = Announcement::parse_all(&text);
        assert_eq!(parsed.len(), 3);
        assert!(
            matches!(&parsed[0], Announcement::Event(e) if e.event_type == "A"
            && e.payload == Some(serde_json::json!({"n": 1})))
        );
        assert_eq!(parsed[1], Announcement::LargeId(id));
        assert!(matches!(&parsed[2], Announcement::Event(e) if e.event_type == "B"));
    }

    #[test]
    fn a_single_announcement_and_foreign_text_still_parse_as_before() {
        let id = Uuid::new_v4();
        assert_eq!(
            Announcement::parse_all(&format!(r#"{{"id":"{id}"}}"#)),
            vec![Announcement::StoredId(id)]
        );
        assert!(Announcement::parse_all("hello").is_empty());
        assert!(Announcement::parse_all("[1, 2]").is_empty());
    }
}
