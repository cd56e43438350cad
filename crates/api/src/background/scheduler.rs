//! The firing loop of schedules. Every replica runs it; each due slot is claimed by exactly one:
//! the claim locks due rows with `FOR UPDATE SKIP LOCKED` and moves them to their next slot in the
//! same transaction, before anything is delivered (the original had no claim and fired a due
//! schedule once per replica). Missed slots are not replayed: the next slot is computed from now.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use store::StoreError;
use store::schedules::DueSchedule;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::liveness::Liveness;
use crate::schedules::cron::next_run;
use crate::schedules::dispatch::ScheduleDispatch;
use crate::schedules::fire::fire;

/// The name under which the loop shows in `GET /admin/liveness`.
pub const LIVENESS_NAME: &str = "scheduler";
/// Fires in flight per replica (the original's 10).
const CONCURRENT_FIRES: usize = 10;
/// Rows claimed per statement at most.
const BATCH: usize = 50;
/// How long shutdown waits for fires in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The loop's settings.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub pool: PgPool,
    pub liveness: Liveness,
    pub dispatch: Arc<dyn ScheduleDispatch>,
    /// How often due schedules are looked for (the original: 30 s).
    pub poll: Duration,
}

impl Scheduler {
    /// The loop, for the server's task tracker; it ends when `shutdown` is cancelled, after the
    /// fires in flight (bounded).
    pub async fn run(self, shutdown: CancellationToken) {
        {
            let fires = TaskTracker::new();
            let slots = Arc::new(Semaphore::new(CONCURRENT_FIRES));
            let mut tick = tokio::time::interval(self.poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if let Err(error) = self.drain(&fires, &slots, &shutdown).await {
                    tracing::warn!(error = %error, "schedule claim failed; retrying next tick");
                }
                self.liveness.tick(LIVENESS_NAME);
            }
            fires.close();
            if tokio::time::timeout(DRAIN_TIMEOUT, fires.wait())
                .await
                .is_err()
            {
                tracing::warn!("schedule fires still running at shutdown");
            }
        }
    }

    /// Claims and starts due schedules while there are any and a fire slot is free.
    async fn drain(
        &self,
        fires: &TaskTracker,
        slots: &Arc<Semaphore>,
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        loop {
            // Wait for one slot, then claim only as many rows as there are slots: a claimed row
            // is never left waiting behind a full replica while another one is idle.
            let Ok(first) = Arc::clone(slots).acquire_owned().await else {
                return Ok(());
            };
            let free = (slots.available_permits() + 1).min(BATCH);
            let claimed = claim(&self.pool, free).await?;
            let exhausted = claimed.len() < free;
            let mut permit = Some(first);
            for schedule in claimed {
                let permit = match permit.take() {
                    Some(permit) => permit,
                    None => Arc::clone(slots)
                        .acquire_owned()
                        .await
                        .expect("never closed"),
                };
                let (pool, dispatch, stop) =
                    (self.pool.clone(), self.dispatch.clone(), shutdown.clone());
                fires.spawn(async move {
                    if let Err(error) = fire(&pool, &dispatch, &schedule, &stop).await {
                        tracing::warn!(error = %error, schedule = %schedule.id, "recording a schedule run failed");
                    }
                    drop(permit);
                });
            }
            if exhausted || shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }
}

/// Claims up to `limit` due schedules: locks them (skipping rows another replica holds) and sets
/// each one's next slot, in one transaction.
pub async fn claim(pool: &PgPool, limit: usize) -> Result<Vec<DueSchedule>, StoreError> {
    let mut tx = pool.begin().await?;
    let due = store::schedules::lock_due(&mut *tx, limit as i64).await?;
    if due.is_empty() {
        return Ok(due);
    }
    let now = Utc::now();
    let ids: Vec<_> = due.iter().map(|schedule| schedule.id).collect();
    // An expression that no longer yields a slot (edited in the database, or a zone that went
    // away) stops the schedule instead of firing it on every tick.
    let next_runs: Vec<_> = due
        .iter()
        .map(|schedule| next_run(&schedule.cron_expr, &schedule.timezone, now).ok())
        .collect();
    store::schedules::advance(&mut *tx, &ids, &next_runs).await?;
    tx.commit().await?;
    Ok(due)
}
