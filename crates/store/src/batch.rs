//! Concurrent reads of one kind share one statement (a DataLoader, or a group commit for reads).
//!
//! One statement of a kind runs at a time; callers that ask meanwhile join the next one, which
//! reads all their keys at once (`= ANY($1)`) when the running one ends. Every caller's answer
//! comes from a statement sent after it asked, so it sees every write that completed before (a
//! client reads its own writes; a revoked token fails the next request). Alone, a caller runs its
//! statement at once; under load, a statement's fixed cost (a round trip, a parse and plan, a
//! wake-up on either side) is paid once per batch instead of once per caller, callers of one key
//! share its row, and a batch grows with the load that waits for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use uuid::Uuid;

use crate::StoreError;

/// Keys one statement reads at most; callers beyond it queue another batch behind.
pub const MAX_BATCH_KEYS: usize = 256;

/// The rows of one batch, by key; a key without a row is absent.
type Rows<K, V> = Arc<HashMap<K, V>>;

/// What the callers of one batch receive: its rows, or its error, shared.
type Answer<V> = Result<V, Arc<StoreError>>;

/// The statement of a queued batch, given its keys.
type FetchMany<K, V> =
    Box<dyn FnOnce(Vec<K>) -> BoxFuture<'static, Result<HashMap<K, V>, StoreError>> + Send>;

/// One kind of read (a statement that takes a set of keys).
pub struct Batcher<K, V> {
    queue: Arc<Mutex<Queue<K, V>>>,
}

/// Whether a statement runs, and the batches that start, one by one, when it ends.
struct Queue<K, V> {
    running: bool,
    batches: VecDeque<NextBatch<K, V>>,
}

/// A batch waiting for the running statement to end, and its callers.
struct NextBatch<K, V> {
    keys: HashSet<K>,
    fetch: FetchMany<K, V>,
    answer: watch::Sender<Option<Answer<Rows<K, V>>>>,
}

impl<K, V> Default for Batcher<K, V> {
    fn default() -> Self {
        Self {
            queue: Arc::new(Mutex::new(Queue {
                running: false,
                batches: VecDeque::new(),
            })),
        }
    }
}

impl<K, V> std::fmt::Debug for Batcher<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (running, queued) = self
            .queue
            .lock()
            .map_or((false, 0), |queue| (queue.running, queue.batches.len()));
        f.debug_struct("Batcher")
            .field("running", &running)
            .field("queued", &queued)
            .finish()
    }
}

impl<K, V> Batcher<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `key`'s row: `fetch(vec![key])` at once when no statement of this kind runs, else the
    /// row the next batch reads (this `fetch` reads that batch's keys, unless another caller's
    /// already will). `fetch` answers the rows it found, by key.
    pub async fn get<F, Fut>(&self, key: K, fetch: F) -> Result<Option<V>, StoreError>
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<HashMap<K, V>, StoreError>> + Send + 'static,
    {
        let mut fetch = Some(fetch);
        let waiting = {
            let mut queue = lock(&self.queue);
            if queue.running {
                Some(queue.join(&key, &mut fetch))
            } else {
                queue.running = true;
                None
            }
        };
        if let Some(waiting) = waiting {
            return Ok(wait(waiting).await?.get(&key).cloned());
        }
        let fetch = fetch.expect("kept by the caller that runs the statement");
        // Starts the next batch when this statement ends, even if this caller goes away.
        let _end = EndOfStatement {
            queue: Arc::clone(&self.queue),
        };
        Ok(fetch(vec![key.clone()]).await?.remove(&key))
    }
}

impl<K, V> Queue<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Adds `key` to the last queued batch, or to a new one (whose statement is `fetch`) when
    /// there is none or it is full; the batch's answer, to wait for.
    fn join<F, Fut>(
        &mut self,
        key: &K,
        fetch: &mut Option<F>,
    ) -> watch::Receiver<Option<Answer<Rows<K, V>>>>
    where
        F: FnOnce(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<HashMap<K, V>, StoreError>> + Send + 'static,
    {
        if let Some(batch) = self.batches.back_mut()
            && (batch.keys.len() < MAX_BATCH_KEYS || batch.keys.contains(key))
        {
            batch.keys.insert(key.clone());
            return batch.answer.subscribe();
        }
        let fetch = fetch.take().expect("not taken yet");
        let (answer, waiting) = watch::channel(None);
        self.batches.push_back(NextBatch {
            keys: HashSet::from([key.clone()]),
            fetch: Box::new(move |keys| Box::pin(fetch(keys))),
            answer,
        });
        waiting
    }
}

/// Dropped when a statement ends: starts the first queued batch, or marks the kind idle.
struct EndOfStatement<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    queue: Arc<Mutex<Queue<K, V>>>,
}

impl<K, V> Drop for EndOfStatement<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        let next = {
            let mut queue = lock(&self.queue);
            let next = queue.batches.pop_front();
            queue.running = next.is_some();
            next
        };
        let Some(next) = next else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run them (shutdown): the queued batches' callers are told they were
            // abandoned as their senders drop.
            let mut queue = lock(&self.queue);
            queue.batches.clear();
            queue.running = false;
            return;
        };
        let end = EndOfStatement {
            queue: Arc::clone(&self.queue),
        };
        runtime.spawn(async move {
            let _end = end;
            let keys = next.keys.into_iter().collect();
            let answer = (next.fetch)(keys).await.map(Arc::new).map_err(Arc::new);
            next.answer.send_replace(Some(answer));
        });
    }
}

/// The answer of the batch `waiting` watches; a batch that ended without one (its task panicked,
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

/// The reads concurrent callers share, one [`Batcher`] each: those a request path runs for every
/// call (the guards' bearer check, a workspace's row) or many clients poll alike.
#[derive(Debug, Default)]
pub(crate) struct SharedReads {
    /// [`crate::tokens::check_bearer`], by token hash and workspace.
    pub(crate) bearer: Batcher<(Vec<u8>, Option<Uuid>), crate::tokens::BearerCheck>,
    /// [`crate::workspaces::get_shared`], by workspace.
    pub(crate) workspace: Batcher<Uuid, crate::workspaces::WorkspaceRow>,
    /// [`crate::secret_scopes::sealed_for_workspace`], by workspace.
    pub(crate) sealed_secrets: Batcher<Uuid, Vec<crate::secret_scopes::SealedSecret>>,
    /// [`crate::approvals::list_pending`], by its age bound (bits of the `f64`).
    pub(crate) pending_approvals: Batcher<u64, (Vec<crate::approvals::PendingRow>, bool)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The queue is consistent between statements; a panic elsewhere leaves nothing half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Statements of a test, each a list of the keys it read.
    type Log = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A test row: `key * 10` and the number of the statement that read it.
    type Row = (u32, usize);
    type TestStatement = BoxFuture<'static, Result<HashMap<u32, Row>, StoreError>>;

    /// A statement that logs its keys, takes `delay`, and finds a row (`key * 10`, tagged with
    /// the statement's number) for every even key.
    fn logged(
        log: &Log,
        delay: Duration,
    ) -> impl FnOnce(Vec<u32>) -> TestStatement + Send + 'static {
        let log = Arc::clone(log);
        move |mut keys| {
            Box::pin(async move {
                keys.sort_unstable();
                let number = {
                    let mut log = lock(&log);
                    log.push(keys.clone());
                    log.len()
                };
                tokio::time::sleep(delay).await;
                Ok(keys
                    .into_iter()
                    .filter(|key| key % 2 == 0)
                    .map(|key| (key, (key * 10, number)))
                    .collect())
            })
        }
    }

    type Reads = Arc<Batcher<u32, Row>>;

    /// Starts a read of key 0 taking `delay` in a task of its own, and lets it begin.
    async fn start_first_read(
        reads: &Reads,
        log: &Log,
        delay: Duration,
    ) -> tokio::task::JoinHandle<Result<Option<Row>, StoreError>> {
        let (reads, fetch) = (Arc::clone(reads), logged(log, delay));
        let read = tokio::spawn(async move { reads.get(0, fetch).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        read
    }

    fn spawn_read(
        reads: &Reads,
        log: &Log,
        key: u32,
    ) -> tokio::task::JoinHandle<Result<Option<Row>, StoreError>> {
        let (reads, fetch) = (Arc::clone(reads), logged(log, Duration::from_millis(20)));
        tokio::spawn(async move { reads.get(key, fetch).await })
    }

    #[tokio::test]
    async fn a_lone_caller_reads_its_key_at_once() {
        let (reads, log) = (Reads::default(), Log::default());
        let row = reads.get(4, logged(&log, Duration::ZERO)).await.unwrap();
        assert_eq!(row, Some((40, 1)));
        assert_eq!(
            reads.get(3, logged(&log, Duration::ZERO)).await.unwrap(),
            None
        );
        assert_eq!(*lock(&log), vec![vec![4], vec![3]]);
        assert!(!lock(&reads.queue).running, "idle again");
    }

    #[tokio::test]
    async fn callers_during_a_statement_share_the_next_one() {
        let (reads, log) = (Reads::default(), Log::default());
        let first = start_first_read(&reads, &log, Duration::from_millis(50)).await;
        let later: Vec<_> = (1..=20)
            .chain([2, 4])
            .map(|key| (key, spawn_read(&reads, &log, key)))
            .collect();
        assert_eq!(first.await.unwrap().unwrap(), Some((0, 1)));
        for (key, caller) in later {
            let expected = (key % 2 == 0).then_some((key * 10, 2));
            assert_eq!(caller.await.unwrap().unwrap(), expected, "key {key}");
        }
        assert_eq!(*lock(&log), vec![vec![0], (1..=20).collect()]);
        assert!(!lock(&reads.queue).running, "idle again");
    }

    #[tokio::test]
    async fn a_full_batch_queues_another_behind_it() {
        let (reads, log) = (Reads::default(), Log::default());
        let first = start_first_read(&reads, &log, Duration::from_millis(50)).await;
        let keys = 1..=(MAX_BATCH_KEYS as u32 + 10);
        let later: Vec<_> = keys
            .clone()
            .map(|key| spawn_read(&reads, &log, key))
            .collect();
        first.await.unwrap().unwrap();
        for caller in later {
            caller.await.unwrap().unwrap();
        }
        let sizes: Vec<usize> = lock(&log).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, MAX_BATCH_KEYS, 10]);
    }

    #[tokio::test]
    async fn an_error_reaches_every_caller_of_its_batch() {
        let (reads, log) = (Reads::default(), Log::default());
        let first = start_first_read(&reads, &log, Duration::from_millis(50)).await;
        let failing = |_keys| async { Err(StoreError::NotFound) };
        let (a, b) = tokio::join!(reads.get(1, failing), reads.get(2, failing));
        for answer in [a, b] {
            let error = answer.unwrap_err();
            assert!(matches!(error.root(), StoreError::NotFound), "{error:?}");
        }
        assert_eq!(first.await.unwrap().unwrap(), Some((0, 1)));
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_still_starts_the_next_batch() {
        let (reads, log) = (Reads::default(), Log::default());
        let first = start_first_read(&reads, &log, Duration::from_secs(60)).await;
        let waiter = spawn_read(&reads, &log, 6);
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(answer.expect("no hang").unwrap().unwrap(), Some((60, 2)));
    }

    #[tokio::test]
    async fn a_statement_that_panics_is_an_error_not_a_hang() {
        let (reads, log) = (Reads::default(), Log::default());
        let first = start_first_read(&reads, &log, Duration::from_millis(30)).await;
        async fn panicking(_keys: Vec<u32>) -> Result<HashMap<u32, Row>, StoreError> {
            panic!("the statement's task panicked")
        }
        let answer = tokio::time::timeout(Duration::from_secs(5), reads.get(2, panicking)).await;
        assert!(matches!(
            answer.expect("no hang"),
            Err(StoreError::ReadAbandoned)
        ));
        first.await.unwrap().unwrap();
        let after = reads.get(2, logged(&log, Duration::ZERO)).await.unwrap();
        assert_eq!(after, Some((20, 2)), "the kind runs statements again");
    }
}
