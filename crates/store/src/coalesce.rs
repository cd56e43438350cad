//! Concurrent identical reads share one statement.
//!
//! While a read of a key runs, callers asking for the same key wait for the *next* read of it,
//! which starts when the running one ends and answers all of them at once. Every caller's answer
//! comes from a statement sent after it asked, so a read still sees every write that completed
//! before it (a client reads its own writes; a revoked token fails the next request). Alone, a
//! caller runs its statement at once, as without this; under load, any number of callers of one
//! key cost at most two statements in flight (the running one and the next), like a group commit
//! for reads.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::StoreError;

/// What the callers of one read receive: the value, or the read's error, shared.
type Answer<V> = Result<V, Arc<StoreError>>;

/// The statement of a read that waits for the running one to end.
type Fetch<V> = Box<dyn FnOnce() -> BoxFuture<'static, Result<V, StoreError>> + Send>;

/// One kind of read (a statement, keyed by its parameters).
pub struct Coalescer<K, V> {
    slots: Arc<Mutex<HashMap<K, Slot<V>>>>,
}

/// A key whose read is running: present from the start of its first read to the end of the last
/// one that was asked for while another ran.
struct Slot<V> {
    next: Option<NextRead<V>>,
}

/// The read that starts when the running one ends, and the callers waiting for it.
struct NextRead<V> {
    fetch: Fetch<V>,
    answer: watch::Sender<Option<Answer<V>>>,
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Self {
            slots: Arc::default(),
        }
    }
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.slots.lock().map_or(0, |slots| slots.len());
        f.debug_struct("Coalescer")
            .field("running", &running)
            .finish()
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `fetch`'s answer for `key`: run at once when no read of `key` runs, else the answer of
    /// the next read of `key` (this `fetch` starts it, unless another caller's already will).
    pub async fn run<F, Fut>(&self, key: K, fetch: F) -> Result<V, StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, StoreError>> + Send + 'static,
    {
        let mut fetch = Some(fetch);
        let waiting = {
            let mut slots = lock(&self.slots);
            match slots.get_mut(&key) {
                None => {
                    slots.insert(key.clone(), Slot { next: None });
                    None
                }
                Some(Slot {
                    next: Some(next), ..
                }) => Some(next.answer.subscribe()),
                Some(slot) => {
                    // This caller's `fetch` becomes the next read.
                    let (answer, waiting) = watch::channel(None);
                    let fetch = fetch.take().expect("not taken yet");
                    let fetch: Fetch<V> = Box::new(move || Box::pin(fetch()));
                    slot.next = Some(NextRead { fetch, answer });
                    Some(waiting)
                }
            }
        };
        if let Some(waiting) = waiting {
            return wait(waiting).await;
        }
        let fetch = fetch.expect("kept by the caller that runs the read");
        // Hands the key to its next read when this one ends, even if this caller goes away.
        let _end = EndOfRead {
            slots: Arc::clone(&self.slots),
            key,
        };
        fetch().await
    }
}

/// The answer of the read `waiting` watches; a read that ended without one (its task panicked,
/// or the runtime shut down) is an error, never a hang.
async fn wait<V: Clone>(mut waiting: watch::Receiver<Option<Answer<V>>>) -> Result<V, StoreError> {
    match waiting.wait_for(Option::is_some).await {
        Ok(answer) => match answer.as_ref() {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(error)) => Err(StoreError::Shared(Arc::clone(error))),
            None => Err(StoreError::ReadAbandoned),
        },
        Err(_) => Err(StoreError::ReadAbandoned),
    }
}

/// Dropped when a read ends: starts the key's next read, if callers asked for one meanwhile, or
/// forgets the key.
struct EndOfRead<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    slots: Arc<Mutex<HashMap<K, Slot<V>>>>,
    key: K,
}

impl<K, V> Drop for EndOfRead<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        let next = {
            let mut slots = lock(&self.slots);
            let next = slots.get_mut(&self.key).and_then(|slot| slot.next.take());
            if next.is_none() {
                slots.remove(&self.key);
            }
            next
        };
        let Some(next) = next else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run it (shutdown): its callers are told it was abandoned.
            lock(&self.slots).remove(&self.key);
            return;
        };
        let end = EndOfRead {
            slots: Arc::clone(&self.slots),
            key: self.key.clone(),
        };
        runtime.spawn(async move {
            let _end = end;
            let answer = (next.fetch)().await.map_err(Arc::new);
            next.answer.send_replace(Some(answer));
        });
    }
}

/// The reads concurrent callers share, one [`Coalescer`] each: those a request path runs for
/// every call (the guards' bearer check, a workspace's row) or many clients poll alike.
#[derive(Debug, Default)]
pub(crate) struct SharedReads {
    /// [`crate::tokens::check_bearer`], by token hash and workspace.
    pub(crate) bearer: Coalescer<(Vec<u8>, Option<uuid::Uuid>), crate::tokens::BearerCheck>,
    /// [`crate::workspaces::get_shared`], by workspace.
    pub(crate) workspace: Coalescer<uuid::Uuid, Option<crate::workspaces::WorkspaceRow>>,
    /// [`crate::secret_scopes::sealed_for_workspace`], by workspace.
    pub(crate) sealed_secrets: Coalescer<uuid::Uuid, Vec<crate::secret_scopes::SealedSecret>>,
    /// [`crate::approvals::list_pending`], by its age bound (bits of the `f64`).
    pub(crate) pending_approvals: Coalescer<u64, (Vec<crate::approvals::PendingRow>, bool)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map is consistent between statements; a panic elsewhere leaves nothing half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A read that counts its statements and takes `delay`.
    fn counted(
        statements: &Arc<AtomicUsize>,
        delay: Duration,
    ) -> impl FnOnce() -> BoxFuture<'static, Result<usize, StoreError>> + Send + 'static {
        let statements = Arc::clone(statements);
        move || {
            Box::pin(async move {
                let number = statements.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                Ok(number)
            })
        }
    }

    /// Starts a read of key 1 taking `delay` in a task of its own, and lets it begin.
    async fn start_first_read(
        reads: &Arc<Coalescer<u32, usize>>,
        statements: &Arc<AtomicUsize>,
        delay: Duration,
    ) -> tokio::task::JoinHandle<Result<usize, StoreError>> {
        let (reads, fetch) = (Arc::clone(reads), counted(statements, delay));
        let read = tokio::spawn(async move { reads.run(1, fetch).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        read
    }

    #[tokio::test]
    async fn callers_during_a_read_share_the_next_one() {
        let reads = Arc::new(Coalescer::<u32, usize>::default());
        let statements = Arc::new(AtomicUsize::new(0));
        let first = start_first_read(&reads, &statements, Duration::from_millis(50)).await;
        let later: Vec<_> = (0..20)
            .map(|_| {
                let (reads, fetch) = (
                    Arc::clone(&reads),
                    counted(&statements, Duration::from_millis(50)),
                );
                tokio::spawn(async move { reads.run(1, fetch).await.unwrap() })
            })
            .collect();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for caller in later {
            // Not the running read's answer: a statement that started after they asked.
            assert_eq!(caller.await.unwrap(), 2);
        }
        assert_eq!(statements.load(Ordering::SeqCst), 2);
        assert!(lock(&reads.slots).is_empty(), "the key is forgotten");
    }

    #[tokio::test]
    async fn other_keys_and_later_callers_run_their_own_reads() {
        let reads = Coalescer::<u32, usize>::default();
        let statements = Arc::new(AtomicUsize::new(0));
        let (one, two) = tokio::join!(
            reads.run(1, counted(&statements, Duration::from_millis(20))),
            reads.run(2, counted(&statements, Duration::from_millis(20))),
        );
        assert_eq!(
            (
                one.unwrap() + two.unwrap(),
                statements.load(Ordering::SeqCst)
            ),
            (3, 2)
        );
        let again = reads.run(1, counted(&statements, Duration::ZERO)).await;
        assert_eq!(again.unwrap(), 3);
    }

    #[tokio::test]
    async fn an_error_reaches_every_caller_of_its_read() {
        let reads = Arc::new(Coalescer::<u32, usize>::default());
        let statements = Arc::new(AtomicUsize::new(0));
        let first = start_first_read(&reads, &statements, Duration::from_millis(50)).await;
        let failing = || async { Err::<usize, _>(StoreError::NotFound) };
        let (a, b) = tokio::join!(reads.run(1, failing), reads.run(1, failing));
        for answer in [a, b] {
            let error = answer.unwrap_err();
            assert!(matches!(error.root(), StoreError::NotFound), "{error:?}");
        }
        assert_eq!(first.await.unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_still_hands_over_to_the_next_read() {
        let reads = Arc::new(Coalescer::<u32, usize>::default());
        let statements = Arc::new(AtomicUsize::new(0));
        let first = start_first_read(&reads, &statements, Duration::from_secs(60)).await;
        let waiter = tokio::spawn({
            let (reads, fetch) = (Arc::clone(&reads), counted(&statements, Duration::ZERO));
            async move { reads.run(1, fetch).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(answer.expect("no hang").unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_read_that_panics_is_an_error_not_a_hang() {
        let reads = Arc::new(Coalescer::<u32, usize>::default());
        let statements = Arc::new(AtomicUsize::new(0));
        let first = start_first_read(&reads, &statements, Duration::from_millis(30)).await;
        async fn panicking() -> Result<usize, StoreError> {
            panic!("the statement's task panicked")
        }
        let answer = tokio::time::timeout(Duration::from_secs(5), reads.run(1, panicking)).await;
        assert!(matches!(
            answer.expect("no hang"),
            Err(StoreError::ReadAbandoned)
        ));
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(
            reads
                .run(1, counted(&statements, Duration::ZERO))
                .await
                .unwrap(),
            2
        );
    }
}
