//! Firing one claimed schedule: wait while its agent is busy, deliver the prompt, record the run
//! (schedule row, `cron_run` history row, `CRON_EXECUTED`/`CRON_SKIPPED` event) in one
//! transaction (the original's `fireSchedule`/`recordSkipped`, `internal/scheduler/scheduler.go:326-629`
//! at 624ef4d0).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use store::StoreError;
use store::schedules::DueSchedule;
use tokio_util::sync::CancellationToken;

use super::dispatch::{DispatchOutcome, ScheduleDispatch, cron_message};

/// How often, and how many times, a busy agent is checked again before the run is skipped.
const BUSY_RECHECK: Duration = Duration::from_secs(10);
const BUSY_RECHECKS: u32 = 12;
/// The longest a delivery may take.
const FIRE_TIMEOUT: Duration = Duration::from_secs(300);
/// The history keeps this many bytes of the prompt.
const HISTORY_PROMPT_BYTES: usize = 200;

/// How a run ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ran {
        status: &'static str,
        error: String,
        /// For an `ok` answer: whether it was empty.
        empty: Option<bool>,
    },
    Skipped {
        reason: String,
        active_tasks: Option<i32>,
    },
}

/// Fires one schedule the caller has claimed (its next slot is already set).
pub async fn fire(
    pool: &PgPool,
    dispatch: &Arc<dyn ScheduleDispatch>,
    schedule: &DueSchedule,
    shutdown: &CancellationToken,
) -> Result<(), StoreError> {
    let outcome = match wait_for_capacity(pool, schedule, shutdown).await {
        Some(active_tasks) => Outcome::Skipped {
            reason: format!("skipped: workspace busy (active_tasks={active_tasks})"),
            active_tasks: Some(active_tasks),
        },
        None => deliver(dispatch, schedule).await,
    };
    record(pool, schedule, &outcome).await
}

/// `None` once the agent has room for a task; `Some(active tasks)` if it stayed busy. A failed
/// read counts as room, as in the original.
async fn wait_for_capacity(
    pool: &PgPool,
    schedule: &DueSchedule,
    shutdown: &CancellationToken,
) -> Option<i32> {
    let mut active = 0;
    for attempt in 0..=BUSY_RECHECKS {
        match store::schedules::workspace_load(pool, schedule.workspace_id).await {
            Ok((running, max)) if running >= max => active = running,
            _ => return None,
        }
        if attempt == BUSY_RECHECKS {
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(BUSY_RECHECK) => {}
        }
    }
    Some(active)
}

async fn deliver(dispatch: &Arc<dyn ScheduleDispatch>, schedule: &DueSchedule) -> Outcome {
    let message = cron_message(schedule.id, &schedule.prompt);
    let sent = dispatch.dispatch(schedule.workspace_id, message);
    let answer = tokio::time::timeout(FIRE_TIMEOUT, sent)
        .await
        .unwrap_or_else(|_| DispatchOutcome::Failed("timed out".to_string()));
    match answer {
        DispatchOutcome::Answered { status, body } if (200..300).contains(&status) => {
            Outcome::Ran {
                status: "ok",
                error: String::new(),
                empty: Some(is_empty_answer(&body)),
            }
        }
        DispatchOutcome::Answered { status, .. } => Outcome::Ran {
            status: "error",
            error: format!("HTTP {status}"),
            empty: None,
        },
        DispatchOutcome::Failed(error) => Outcome::Ran {
            status: "error",
            error,
            empty: None,
        },
        DispatchOutcome::Unavailable(reason) => Outcome::Skipped {
            reason,
            active_tasks: None,
        },
    }
}

/// The run's status on the schedule row, its history row and its event, together.
async fn record(
    pool: &PgPool,
    schedule: &DueSchedule,
    outcome: &Outcome,
) -> Result<(), StoreError> {
    let (status, error, summary, request, event, payload) = match outcome {
        Outcome::Ran { status, error, .. } => (
            *status,
            error.as_str(),
            format!("Cron: {}", schedule.name),
            json!({
                "schedule_id": schedule.id,
                "schedule_name": schedule.name,
                "cron_expr": schedule.cron_expr,
                "prompt": truncate(&schedule.prompt, HISTORY_PROMPT_BYTES),
            }),
            "CRON_EXECUTED",
            json!({"schedule_id": schedule.id, "schedule_name": schedule.name, "status": status}),
        ),
        Outcome::Skipped {
            reason,
            active_tasks,
        } => (
            "skipped",
            reason.as_str(),
            format!("Cron skipped: {}", schedule.name),
            skipped_request(schedule, *active_tasks),
            "CRON_SKIPPED",
            json!({"schedule_id": schedule.id, "schedule_name": schedule.name, "reason": reason}),
        ),
    };
    let history = store::activity::NewActivity {
        tool_trace: None,
        workspace_id: schedule.workspace_id,
        activity_type: "cron_run",
        source_id: None,
        target_id: None,
        method: Some("cron"),
        summary: Some(&summary),
        request_body: Some(&crate::json::raw(&request)),
        response_body: None,
        duration_ms: None,
        status,
        error_detail: (!error.is_empty()).then_some(error),
    };
    let mut tx = pool.begin().await?;
    let empty = match outcome {
        Outcome::Ran { empty, .. } => *empty,
        Outcome::Skipped { .. } => None,
    };
    store::schedules::record_outcome(&mut *tx, schedule.id, status, error, empty).await?;
    store::activity::insert(&mut *tx, &history).await?;
    store::events::record(&mut *tx, event, Some(schedule.workspace_id), &payload).await?;
    tx.commit().await?;
    Ok(())
}

/// The original's heuristic for an agent that answered nothing (`scheduler.go:791-809`).
fn is_empty_answer(body: &str) -> bool {
    const EMPTY_MARKERS: [&str; 4] = [
        "(no response generated)",
        r#""text": "(no response generated)""#,
        r#""text":"""#,
        r#""text": """#,
    ];
    body.is_empty() || EMPTY_MARKERS.iter().any(|marker| body.contains(marker))
}

fn skipped_request(schedule: &DueSchedule, active_tasks: Option<i32>) -> Value {
    let mut request = json!({
        "schedule_id": schedule.id,
        "schedule_name": schedule.name,
        "cron_expr": schedule.cron_expr,
        "skipped": true,
    });
    if let Some(active_tasks) = active_tasks {
        request["active_tasks"] = json!(active_tasks);
    }
    request
}

/// At most `max` bytes, cut on a character boundary and ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let ellipsis = '…';
    let mut end = max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 200), "short");
        let long = "é".repeat(150);
        let cut = truncate(&long, 200);
        assert!(cut.len() <= 200);
        assert!(cut.ends_with('…'));
    }
}
