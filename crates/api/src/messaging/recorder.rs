//! What answered and failed proxy calls leave behind (their `a2a_receive` activity rows with
//! `ACTIVITY_LOGGED`, `A2A_RESPONSE`, token usage, the caller's `last_outbound_at`), written off
//! the request path by one background writer.
//!
//! The writer takes whatever records are waiting (up to [`MAX_BATCH`]) and writes them in one
//! transaction: one multi-row insert, one `pg_notify` statement, the usage and outbound stamps in
//! a fixed (workspace id) order so two replicas' batches cannot deadlock. A batch that fails is
//! retried record by record, so one bad record loses only itself. The queue is bounded
//! ([`CAPACITY`]): when the database falls behind, calls wait to enqueue rather than memory
//! growing. Nothing sent is lost at shutdown: the sender is dropped when shutdown starts, later
//! records are written directly (tracked), and the writer ends once it has written everything
//! sent before; the server waits for its tasks before closing the database pool.

use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use sqlx::PgPool;
use store::activity::NewActivity;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Records waiting for the writer at most.
pub const CAPACITY: usize = 4096;
/// Records written in one transaction at most.
pub const MAX_BATCH: usize = 256;

/// One thing to write.
#[derive(Debug, Clone)]
pub enum Record {
    /// An activity row, announced as `ACTIVITY_LOGGED`.
    Activity(Activity),
    /// An announcement only (`A2A_RESPONSE`).
    Announce {
        event_type: &'static str,
        workspace_id: Uuid,
        payload: Box<RawValue>,
    },
    /// One answered call's reported tokens (`store::budget::add_usage`).
    Usage {
        workspace_id: Uuid,
        input_tokens: i64,
        output_tokens: i64,
    },
    /// The caller's `last_outbound_at`.
    Outbound(Uuid),
}

/// An owned [`NewActivity`].
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub workspace_id: Uuid,
    pub activity_type: &'static str,
    pub source_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub method: Option<String>,
    pub summary: Option<String>,
    pub request_body: Option<Box<RawValue>>,
    pub response_body: Option<Box<RawValue>>,
    pub duration_ms: Option<i32>,
    pub status: &'static str,
    pub error_detail: Option<String>,
    pub tool_trace: Option<Box<RawValue>>,
}

impl Activity {
    pub fn as_new(&self) -> NewActivity<'_> {
        NewActivity {
            workspace_id: self.workspace_id,
            activity_type: self.activity_type,
            source_id: self.source_id,
            target_id: self.target_id,
            method: self.method.as_deref(),
            summary: self.summary.as_deref(),
            request_body: self.request_body.as_deref(),
            response_body: self.response_body.as_deref(),
            duration_ms: self.duration_ms,
            status: self.status,
            error_detail: self.error_detail.as_deref(),
            tool_trace: self.tool_trace.as_deref(),
        }
    }
}

/// The writer's queue. Until [`Recorder::start`] (and again once shutdown starts), records are
/// written directly, each in a task of its own on the tracker.
#[derive(Debug, Default)]
pub struct Recorder {
    sender: Arc<Mutex<Option<mpsc::Sender<Record>>>>,
}

impl Recorder {
    /// Starts the writer on `tasks`; once `shutdown` is cancelled it takes no new records and
    /// ends when the ones sent before are written.
    pub fn start(&self, db: PgPool, tasks: &TaskTracker, shutdown: CancellationToken) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        *lock(&self.sender) = Some(sender);
        tasks.spawn(write_all(db, receiver));
        let slot = self.sender.clone();
        tasks.spawn(async move {
            shutdown.cancelled().await;
            // The channel closes once the senders cloned by calls in flight are dropped too.
            lock(&slot).take();
        });
    }

    /// Hands `record` to the writer, waiting while its queue is full; without a writer, writes
    /// it in a tracked task.
    pub async fn record(&self, db: &PgPool, tasks: &TaskTracker, record: Record) {
        let sender = lock(&self.sender).clone();
        let unsent = match sender {
            Some(sender) => match sender.send(record).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(record)) => record,
            },
            None => record,
        };
        let db = db.clone();
        tasks.spawn(async move { write_batch(&db, &[unsent]).await });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer: batches of whatever is waiting, until the channel is closed and empty.
async fn write_all(db: PgPool, mut receiver: mpsc::Receiver<Record>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write_batch(&db, &batch).await;
        batch.clear();
    }
}

/// Writes a batch in one transaction, or record by record when that fails.
pub async fn write_batch(db: &PgPool, batch: &[Record]) {
    let Err(error) = write(db, batch).await else {
        return;
    };
    if batch.len() == 1 {
        tracing::warn!(error = %error, "cannot record an A2A call");
        return;
    }
    tracing::warn!(error = %error, records = batch.len(), "cannot record a batch of A2A calls; recording them one by one");
    for record in batch {
        if let Err(error) = write(db, std::slice::from_ref(record)).await {
            tracing::warn!(error = %error, "cannot record an A2A call");
        }
    }
}

async fn write(db: &PgPool, batch: &[Record]) -> Result<(), store::StoreError> {
    let activities: Vec<NewActivity<'_>> = batch
        .iter()
        .filter_map(|record| match record {
            Record::Activity(activity) => Some(activity.as_new()),
            _ => None,
        })
        .collect();
    let logged: Vec<Box<RawValue>> = activities
        .iter()
        .map(crate::agents::activity::announcement)
        .collect();
    let mut announcements: Vec<(&str, Uuid, &RawValue)> = activities
        .iter()
        .zip(&logged)
        .map(|(activity, payload)| ("ACTIVITY_LOGGED", activity.workspace_id, &**payload))
        .collect();
    let mut usage = Vec::new();
    let mut outbound = Vec::new();
    for record in batch {
        match record {
            Record::Activity(_) => {}
            Record::Announce {
                event_type,
                workspace_id,
                payload,
            } => announcements.push((event_type, *workspace_id, &**payload)),
            Record::Usage {
                workspace_id,
                input_tokens,
                output_tokens,
            } => usage.push((*workspace_id, *input_tokens, *output_tokens)),
            Record::Outbound(caller) => outbound.push(*caller),
        }
    }
    // Row locks in one order whatever the batch, so concurrent batches cannot deadlock.
    usage.sort_by_key(|(workspace, _, _)| *workspace);
    outbound.sort_unstable();
    outbound.dedup();

    let mut tx = db.begin().await?;
    store::activity::insert_many(&mut *tx, &activities).await?;
    store::events::announce_many(&mut tx, &announcements).await?;
    let today = crate::panels::budget::today_utc();
    for (workspace, input, output) in usage {
        store::budget::add_usage(&mut *tx, workspace, today, input, output).await?;
    }
    for caller in outbound {
        store::messaging::touch_last_outbound(&mut *tx, caller).await?;
    }
    tx.commit().await?;
    Ok(())
}
