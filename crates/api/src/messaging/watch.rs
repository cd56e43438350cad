//! The proxy's timeouts (the original's idle timer, `handlers/a2a_proxy.go:833-872` at 624ef4d0):
//! an agent call is abandoned after a window with no sign of life from the target (any event
//! about it on the bus, or a chunk of its answer), and in any case after a total ceiling.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use crate::events_hub::EventsHub;

/// Why a call was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// No sign of life for the idle window.
    Idle(Duration),
    /// The total ceiling passed.
    Total(Duration),
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stall::Idle(window) => write!(f, "idle timeout: no sign of life for {window:?}"),
            Stall::Total(limit) => write!(f, "total timeout: call exceeded {limit:?}"),
        }
    }
}

/// Watches one call to one target. Events about the target are not followed one by one: when
/// the window ends, the hub says when the target was last the subject of one
/// ([`EventsHub::last_seen`]), and the window restarts from there if that is later. A call
/// costs nothing per event of the process (a subscription would wake every call in flight on
/// every event).
#[derive(Debug)]
pub struct IdleWatch {
    hub: EventsHub,
    target: Uuid,
    window: Duration,
    total: Duration,
    last_sign_of_life: Instant,
    deadline: Instant,
}

impl IdleWatch {
    pub fn new(hub: &EventsHub, target: Uuid, window: Duration, total: Duration) -> Self {
        let now = Instant::now();
        Self {
            hub: hub.clone(),
            target,
            window,
            total,
            last_sign_of_life: now,
            deadline: now + total,
        }
    }

    /// The target showed it is working (a chunk of its answer arrived).
    pub fn alive(&mut self) {
        self.last_sign_of_life = Instant::now();
    }

    /// Runs `work` until it finishes, or the target stays silent for the window, or the ceiling
    /// passes.
    pub async fn run<F: Future>(&mut self, work: F) -> Result<F::Output, Stall> {
        tokio::pin!(work);
        loop {
            let silent_until = (self.last_sign_of_life + self.window).min(self.deadline);
            tokio::select! {
                output = &mut work => return Ok(output),
                () = sleep_until(silent_until) => {
                    if Instant::now() >= self.deadline {
                        return Err(Stall::Total(self.total));
                    }
                    match self.hub.last_seen(self.target) {
                        Some(seen) if seen > self.last_sign_of_life => self.last_sign_of_life = seen,
                        _ => return Err(Stall::Idle(self.window)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events_hub::LiveEvent;

    fn event_about(id: Uuid) -> LiveEvent {
        LiveEvent {
            event: "WORKSPACE_HEARTBEAT".into(),
            workspace_id: id.to_string(),
            timestamp: chrono::Utc::now(),
            payload: serde_json::Value::Null,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_ends_the_call_and_events_about_the_target_extend_it() {
        let hub = EventsHub::default();
        let target = Uuid::new_v4();
        let window = Duration::from_secs(10);
        let mut watch = IdleWatch::new(&hub, target, window, Duration::from_secs(3600));
        let publisher = hub.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(8)).await;
                publisher.publish(event_about(Uuid::new_v4())); // someone else: no effect
                publisher.publish(event_about(target));
            }
        });
        let started = Instant::now();
        let outcome = watch.run(std::future::pending::<()>()).await;
        assert_eq!(outcome, Err(Stall::Idle(window)));
        // Three beats at 8 s intervals, then the 10 s window.
        assert_eq!(started.elapsed(), Duration::from_secs(34));
    }

    #[tokio::test(start_paused = true)]
    async fn the_ceiling_holds_whatever_the_events() {
        let hub = EventsHub::default();
        let target = Uuid::new_v4();
        let total = Duration::from_secs(30);
        let mut watch = IdleWatch::new(&hub, target, Duration::from_secs(10), total);
        let publisher = hub.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                publisher.publish(event_about(target));
            }
        });
        assert_eq!(
            watch.run(std::future::pending::<()>()).await,
            Err(Stall::Total(total))
        );
    }
}
