//! At most a few multi-file bodies (replace, template import) in memory at once: each can be
//! tens of MiB. A bounded queue waits for a permit; beyond it, or after waiting too long, the
//! caller gets 503 `busy` and retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;
use crate::error::ErrorBody;

/// Multi-file bodies processed at once.
pub const MAX_RUNNING_BATCHES: usize = 4;
/// Multi-file requests waiting for a permit at most; more are refused at once.
pub const MAX_WAITING_BATCHES: usize = 16;
/// The longest a request waits for a permit.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The permits, shared by every request of a router (an axum `Extension`).
#[derive(Debug, Clone)]
pub struct BatchPermits {
    running: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl Default for BatchPermits {
    fn default() -> Self {
        BatchPermits::new(MAX_RUNNING_BATCHES, MAX_WAITING_BATCHES)
    }
}

impl BatchPermits {
    pub fn new(running: usize, max_waiting: usize) -> Self {
        BatchPermits {
            running: Arc::new(Semaphore::new(running)),
            waiting: Arc::default(),
            max_waiting,
        }
    }

    /// A permit, held until dropped; 503 `busy` when the queue is full or the wait too long.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _queued = Queued::join(&self.waiting, self.max_waiting).ok_or_else(busy)?;
        match tokio::time::timeout(MAX_WAIT, self.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
    }
}

/// A place in the queue, given back on drop (also when the caller gives up).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize, max: usize) -> Option<Queued<'a>> {
        let before = waiting.fetch_add(1, Ordering::AcqRel);
        let queued = Queued(waiting);
        (before < max).then_some(queued)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn busy() -> ApiError {
    let body = ErrorBody {
        code: None,
        error: "busy".to_string(),
    };
    ApiError::with_body(StatusCode::SERVICE_UNAVAILABLE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_running_and_waiting_bounds_callers_are_busy() {
        let permits = BatchPermits::new(1, 1);
        let first = permits.acquire().await.unwrap();
        let waiter = {
            let permits = permits.clone();
            tokio::spawn(async move { permits.acquire().await.map(drop) })
        };
        while permits.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = permits.acquire().await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        waiter
            .await
            .unwrap()
            .expect("the queued caller gets the permit");
        assert_eq!(permits.waiting.load(Ordering::Acquire), 0);
        drop(permits.acquire().await.unwrap());
    }
}
