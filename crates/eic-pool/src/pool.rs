//! A keyed pool of shared connections, with no AWS or SSH in it.
//!
//! Per instance id the pool holds at most one connection, shared by concurrent operations as
//! leases. The key's state is `Empty` (absent from the map), `Connecting` (one setup in flight,
//! callers wait on its outcome) or `Ready` (an entry to lease). Setups run in their own task, so a
//! caller that gives up (timeout, dropped request) never abandons the others; the task's
//! `SetupGuard` clears the key when the setup fails, panics or is cancelled, which wakes every
//! waiter, so a key can never stay wedged.
//!
//! A [`Lease`] holds one operation slot of its connection (a FIFO semaphore permit) and gives it
//! back in `Drop`, synchronously. Async teardown (`Connector::disconnect`) happens only in the
//! reaper task, which also closes idle and aged connections and exits with the pool.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::metrics;

/// How long the reaper gives one connection to say goodbye.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Pool::close`] waits for the reaper and the setups in flight to end (a reaper
/// mid-way through a disconnect finishes it first).
const TASKS_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Key of the pool: an EC2 instance id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Builds and tears down the connections of a [`Pool`].
pub trait Connector: Send + Sync + 'static {
    type Conn: Send + Sync + 'static;
    /// Cloned to every caller that waited for a failed setup.
    type Error: Clone + Send + Sync + 'static;

    /// Builds an authenticated connection to the instance.
    fn connect(
        &self,
        instance: &InstanceId,
    ) -> impl Future<Output = Result<Self::Conn, Self::Error>> + Send;

    /// Cheap synchronous health check (e.g. "is the transport closed?"), run on lookup and sweep.
    fn is_broken(&self, conn: &Self::Conn) -> bool;

    /// Polite async teardown; the connection is dropped right after it.
    fn disconnect(&self, conn: &Self::Conn) -> impl Future<Output = ()> + Send;
}

/// Limits of a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Close a connection unused for this long.
    pub idle_timeout: Duration,
    /// Stop leasing a connection this long after it was built (a new one is built instead).
    pub max_lifetime: Duration,
    /// Connections kept at most; beyond it, the least recently used idle one is closed.
    pub max_connections: usize,
    /// Connections (and setups) at most, across all keys.
    pub max_tunnels: usize,
    /// Concurrent leases at most on one connection; further callers queue in FIFO order.
    pub max_ops_per_connection: usize,
    /// Long-lived shell leases at most on one connection (they hold no operation slot).
    pub max_shells_per_connection: usize,
    /// A shell lease is only given on a connection younger than this; an older one is retired
    /// (it finishes its leases) and a fresh one built, so a new shell has its tunnel's time ahead.
    pub shell_max_age: Duration,
}

/// Why [`Pool::acquire`] gave no lease.
#[derive(Debug, Clone)]
pub enum AcquireError<E> {
    /// The setup this caller waited for failed with this error.
    Setup(E),
    /// Setups for this key were abandoned (panicked or cancelled) twice in a row.
    SetupAborted,
    /// The pool is closed.
    Closed,
    /// The connection already carries `max_shells_per_connection` shells.
    ShellsFull(usize),
}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// Connections alive, including retired ones still finishing their leases.
    pub connections: usize,
    /// Tunnels in use: live connections plus setups holding a tunnel slot.
    pub tunnels: usize,
    /// Leases handed out and not yet dropped (including those queued for a channel).
    pub leases: usize,
    /// Operations waiting for a operation slot.
    pub queued: usize,
    /// Setups started since the pool was created.
    pub setups: u64,
    /// Setups that failed.
    pub setups_failed: u64,
}

/// Cheap-clone handle to the pool. Dropping the last handle stops the reaper.
pub struct Pool<C: Connector> {
    shared: Arc<Shared<C>>,
}

impl<C: Connector> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<C: Connector> fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish()
    }
}

struct Shared<C: Connector> {
    connector: Arc<C>,
    config: PoolConfig,
    state: Mutex<State<C>>,
    tunnels: Arc<Semaphore>,
    counters: Arc<Counters>,
    wake_reaper: Arc<Notify>,
    cancel: CancellationToken,
    /// The reaper and the setup tasks, joined by [`Pool::close`].
    tasks: TaskTracker,
    created: Instant,
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    leases: AtomicUsize,
    queued: AtomicUsize,
    setups: AtomicU64,
    setups_failed: AtomicU64,
}

struct State<C: Connector> {
    slots: HashMap<InstanceId, Slot<C>>,
    /// Entries out of the map that still have leases, or wait for the reaper's disconnect.
    retired: Vec<Arc<Entry<C::Conn>>>,
    next_setup: u64,
    closed: bool,
}

enum Slot<C: Connector> {
    Connecting {
        setup: u64,
        outcome: watch::Receiver<Outcome<C::Error>>,
    },
    Ready(Arc<Entry<C::Conn>>),
}

#[derive(Clone)]
enum Outcome<E> {
    Pending,
    Ready,
    Failed(E),
}

type EntryRef<C> = Arc<Entry<<C as Connector>::Conn>>;

struct Entry<T> {
    conn: T,
    created: Instant,
    channels: Arc<Semaphore>,
    shells: Arc<Semaphore>,
    // Usage bookkeeping: read and written only under the pool's state lock, so plain atomics
    // (for `Sync`) with relaxed ordering are enough.
    leases: AtomicUsize,
    last_used: AtomicU64,
    retired: AtomicBool,
    broken: AtomicBool,
    _tunnel: TunnelSlot,
    _live: LiveConnection,
}

/// Counts a live connection from construction to drop.
struct LiveConnection {
    counters: Arc<Counters>,
}

impl LiveConnection {
    fn new(counters: Arc<Counters>) -> Self {
        let live = counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::connections_live(live);
        Self { counters }
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        let live = self.counters.connections.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::connections_live(live);
    }
}

/// One of the `max_tunnels` slots, held by a setup and then by its connection.
struct TunnelSlot {
    permit: Option<OwnedSemaphorePermit>,
    tunnels: Arc<Semaphore>,
    max_tunnels: usize,
}

impl TunnelSlot {
    fn new(permit: OwnedSemaphorePermit, tunnels: Arc<Semaphore>, max_tunnels: usize) -> Self {
        let slot = Self {
            permit: Some(permit),
            tunnels,
            max_tunnels,
        };
        slot.report();
        slot
    }

    fn report(&self) {
        metrics::tunnels_live(self.max_tunnels - self.tunnels.available_permits());
    }
}

impl Drop for TunnelSlot {
    fn drop(&mut self) {
        self.permit.take();
        self.report();
    }
}

impl<T> Entry<T> {
    fn stamp(&self, now: Instant, epoch: Instant) {
        let nanos = now.saturating_duration_since(epoch).as_nanos() as u64;
        self.last_used.store(nanos, Ordering::Relaxed);
    }

    fn last_used(&self, epoch: Instant) -> Instant {
        epoch + Duration::from_nanos(self.last_used.load(Ordering::Relaxed))
    }

    fn leases(&self) -> usize {
        self.leases.load(Ordering::Relaxed)
    }
}

/// A share of one pooled connection: derefs to it and holds one operation slot until dropped.
#[must_use = "a lease holds a operation slot until it is dropped"]
pub struct Lease<C: Connector> {
    entry: Arc<Entry<C::Conn>>,
    channel: Option<OwnedSemaphorePermit>,
    shared: Weak<Shared<C>>,
}

impl<C: Connector> Lease<C> {
    /// Marks the connection as unusable: the pool drops it and the next call builds a fresh one.
    pub fn poison(&self) {
        self.entry.broken.store(true, Ordering::Relaxed);
    }

    /// How long ago the connection was built.
    pub fn age(&self) -> Duration {
        self.entry.created.elapsed()
    }

    /// When the connection was built.
    pub fn built_at(&self) -> Instant {
        self.entry.created
    }
}

impl<C: Connector> Deref for Lease<C> {
    type Target = C::Conn;

    fn deref(&self) -> &C::Conn {
        &self.entry.conn
    }
}

impl<C: Connector> fmt::Debug for Lease<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("has_channel", &self.channel.is_some())
            .finish()
    }
}

impl<C: Connector> Drop for Lease<C> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The operation died halfway; its channel's state is unknown.
            self.poison();
        }
        self.channel.take();
        if let Some(shared) = self.shared.upgrade() {
            shared.release(&self.entry);
        }
    }
}

/// What a caller does after looking at the key's slot.
enum Next<C: Connector> {
    Lease(Lease<C>),
    Wait(watch::Receiver<Outcome<C::Error>>),
}

impl<C: Connector> Pool<C> {
    /// Creates the pool and its reaper task (call within a Tokio runtime).
    pub fn new(connector: C, config: PoolConfig) -> Self {
        let tunnels = Arc::new(Semaphore::new(config.max_tunnels));
        let shared = Arc::new(Shared {
            connector: Arc::new(connector),
            config,
            state: Mutex::new(State {
                slots: HashMap::new(),
                retired: Vec::new(),
                next_setup: 0,
                closed: false,
            }),
            tunnels,
            counters: Arc::default(),
            wake_reaper: Arc::new(Notify::new()),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            created: Instant::now(),
        });
        shared.tasks.spawn(reap(
            Arc::downgrade(&shared),
            shared.connector.clone(),
            shared.wake_reaper.clone(),
            shared.cancel.clone(),
        ));
        Self { shared }
    }

    /// The connector the pool builds connections with.
    pub fn connector(&self) -> &C {
        &self.shared.connector
    }

    /// Leases the instance's connection, building it first if needed (one setup for all callers).
    pub async fn acquire(&self, instance: &InstanceId) -> Result<Lease<C>, AcquireError<C::Error>> {
        let lease = self.lease(instance, None).await?;
        Ok(self.shared.wait_for_channel(lease).await)
    }

    /// A long-lived lease for a shell: it keeps the connection open but holds none of the
    /// operation slots (a shell never starves file operations). It takes one of the connection's
    /// `max_shells_per_connection` shell slots, and only on a connection younger than
    /// `shell_max_age` (an older one is retired and a fresh one built).
    pub async fn acquire_shell(
        &self,
        instance: &InstanceId,
    ) -> Result<Lease<C>, AcquireError<C::Error>> {
        let mut lease = self
            .lease(instance, Some(self.shared.config.shell_max_age))
            .await?;
        let permit = lease
            .entry
            .shells
            .clone()
            .try_acquire_owned()
            .map_err(|_| AcquireError::ShellsFull(self.shared.config.max_shells_per_connection))?;
        lease.channel = Some(permit);
        Ok(lease)
    }

    /// A lease with no slot yet, on a connection younger than `max_age` when given.
    async fn lease(
        &self,
        instance: &InstanceId,
        max_age: Option<Duration>,
    ) -> Result<Lease<C>, AcquireError<C::Error>> {
        let mut aborted = 0;
        loop {
            let mut outcome = match self.shared.lookup(instance, max_age)? {
                Next::Lease(lease) => return Ok(lease),
                Next::Wait(outcome) => outcome,
            };
            let settled = outcome
                .wait_for(|o| !matches!(o, Outcome::Pending))
                .await
                .map(|o| (*o).clone());
            match settled {
                Ok(Outcome::Failed(err)) => return Err(AcquireError::Setup(err)),
                Ok(_) => {}
                Err(_) => {
                    // The setup task ended without an outcome: cancelled or panicked.
                    aborted += 1;
                    if aborted >= 2 {
                        return Err(AcquireError::SetupAborted);
                    }
                }
            }
        }
    }

    pub fn status(&self) -> PoolStatus {
        let counters = &self.shared.counters;
        PoolStatus {
            connections: counters.connections.load(Ordering::Relaxed),
            tunnels: self.shared.config.max_tunnels - self.shared.tunnels.available_permits(),
            leases: counters.leases.load(Ordering::Relaxed),
            queued: counters.queued.load(Ordering::Relaxed),
            setups: counters.setups.load(Ordering::Relaxed),
            setups_failed: counters.setups_failed.load(Ordering::Relaxed),
        }
    }

    /// Refuses new leases, cancels setups, and disconnects every connection not in use; leased
    /// connections are dropped when their last lease is.
    pub async fn close(&self) {
        self.shared.cancel.cancel();
        let idle = {
            let mut state = self.shared.lock();
            state.closed = true;
            let slots = std::mem::take(&mut state.slots);
            let mut retired = std::mem::take(&mut state.retired);
            retired.extend(slots.into_values().filter_map(|slot| match slot {
                Slot::Ready(entry) => Some(entry),
                Slot::Connecting { .. } => None,
            }));
            for entry in &retired {
                entry.retired.store(true, Ordering::Relaxed);
            }
            retired.retain(|e| e.leases() == 0);
            retired
        };
        // Concurrently: each disconnect may wait up to its timeout, and a shutdown budget
        // cannot afford one timeout per connection in sequence.
        let connector = &*self.shared.connector;
        futures_util::future::join_all(idle.into_iter().map(|entry| disconnect(connector, entry)))
            .await;
        // Cancelled above, the reaper and the setups end at their next await point.
        self.shared.tasks.close();
        if tokio::time::timeout(TASKS_CLOSE_TIMEOUT, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?TASKS_CLOSE_TIMEOUT, "EIC pool tasks still running after close");
        }
    }

    /// Whether the pool's own tasks (the reaper, setups in flight) have all ended.
    pub fn tasks_ended(&self) -> bool {
        self.shared.tasks.is_closed() && self.shared.tasks.is_empty()
    }
}

impl<C: Connector> Shared<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A panic never happens while the lock is held (no user code runs under it), but stay
        // usable even if it did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The origin of the entries' `last_used` stamps.
    fn epoch(&self) -> Instant {
        self.created
    }

    fn is_usable(&self, entry: &Entry<C::Conn>, now: Instant) -> bool {
        let epoch = self.epoch();
        let idle_too_long = entry.leases() == 0
            && now.saturating_duration_since(entry.last_used(epoch)) >= self.config.idle_timeout;
        !entry.broken.load(Ordering::Relaxed)
            && !self.connector.is_broken(&entry.conn)
            && now.saturating_duration_since(entry.created) < self.config.max_lifetime
            && !idle_too_long
    }

    fn lookup(
        self: &Arc<Self>,
        instance: &InstanceId,
        max_age: Option<Duration>,
    ) -> Result<Next<C>, AcquireError<C::Error>> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.closed {
            return Err(AcquireError::Closed);
        }
        let young_enough = |entry: &Entry<C::Conn>| {
            max_age.is_none_or(|age| now.saturating_duration_since(entry.created) < age)
        };
        match state.slots.get(instance) {
            Some(Slot::Ready(entry)) if self.is_usable(entry, now) && young_enough(entry) => {
                entry.leases.fetch_add(1, Ordering::Relaxed);
                entry.stamp(now, self.epoch());
                self.counters.leases.fetch_add(1, Ordering::Relaxed);
                return Ok(Next::Lease(Lease {
                    entry: entry.clone(),
                    channel: None,
                    shared: Arc::downgrade(self),
                }));
            }
            Some(Slot::Ready(_)) => {
                retire(&mut state, instance);
                self.wake_reaper.notify_one();
            }
            Some(Slot::Connecting { outcome, .. }) => return Ok(Next::Wait(outcome.clone())),
            None => {}
        }
        let setup = state.next_setup;
        state.next_setup += 1;
        let (tx, rx) = watch::channel(Outcome::Pending);
        state.slots.insert(
            instance.clone(),
            Slot::Connecting {
                setup,
                outcome: rx.clone(),
            },
        );
        drop(state);
        self.counters.setups.fetch_add(1, Ordering::Relaxed);
        self.spawn_setup(instance.clone(), setup, tx);
        Ok(Next::Wait(rx))
    }

    fn spawn_setup(
        self: &Arc<Self>,
        instance: InstanceId,
        setup: u64,
        tx: watch::Sender<Outcome<C::Error>>,
    ) {
        let guard = SetupGuard {
            shared: Arc::downgrade(self),
            instance: instance.clone(),
            setup,
            tx: Some(tx),
        };
        let connector = self.connector.clone();
        let cancel = self.cancel.clone();
        let tunnel = self.acquire_tunnel();
        let span = tracing::info_span!("eic.setup", instance.id = %instance);
        self.tasks.spawn(
            async move {
                let guard = guard;
                let built = tokio::select! {
                    _ = cancel.cancelled() => return,
                    built = async {
                        let permit = tunnel.await;
                        (connector.connect(&instance).await, permit)
                    } => built,
                };
                match built {
                    (Ok(conn), Some(permit)) => guard.succeed(conn, permit),
                    (Err(err), _) => guard.fail(err),
                    (Ok(_), None) => {} // the pool went away; the guard clears up
                }
            }
            .instrument(span),
        );
    }

    /// Waits for a tunnel slot, closing the least recently used idle connection when all are
    /// taken (an idle tunnel should not block a needed one).
    fn acquire_tunnel(self: &Arc<Self>) -> impl Future<Output = Option<TunnelSlot>> + use<C> {
        let shared = Arc::downgrade(self);
        let tunnels = self.tunnels.clone();
        let max_tunnels = self.config.max_tunnels;
        async move {
            let permit = match tunnels.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    if let Some(shared) = shared.upgrade() {
                        let mut state = shared.lock();
                        if let Some(victim) = least_recently_used_idle(&state, None, shared.epoch())
                        {
                            retire(&mut state, &victim);
                            shared.wake_reaper.notify_one();
                        }
                    }
                    tunnels.clone().acquire_owned().await.ok()?
                }
            };
            Some(TunnelSlot::new(permit, tunnels, max_tunnels))
        }
    }

    async fn wait_for_channel(&self, mut lease: Lease<C>) -> Lease<C> {
        let channels = lease.entry.channels.clone();
        let permit = match channels.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let _queued = QueuedGuard::new(&self.counters);
                // The semaphore is never closed, so this cannot fail.
                channels
                    .acquire_owned()
                    .await
                    .expect("channel semaphore is never closed")
            }
        };
        lease.channel = Some(permit);
        lease
    }

    /// Bookkeeping when a lease is dropped (synchronous; teardown is the reaper's job).
    fn release(&self, entry: &Arc<Entry<C::Conn>>) {
        let now = Instant::now();
        let mut state = self.lock();
        let left = entry.leases.fetch_sub(1, Ordering::Relaxed) - 1;
        self.counters.leases.fetch_sub(1, Ordering::Relaxed);
        entry.stamp(now, self.epoch());
        let broken = entry.broken.load(Ordering::Relaxed) || self.connector.is_broken(&entry.conn);
        // Last lease gone: the reaper must learn the new idle deadline (or close a retiree).
        let mut wake = left == 0;
        if broken && !entry.retired.load(Ordering::Relaxed) {
            // Drop it from the map at once, so the next call builds a fresh connection.
            let key = state.slots.iter().find_map(|(key, slot)| match slot {
                Slot::Ready(e) if Arc::ptr_eq(e, entry) => Some(key.clone()),
                _ => None,
            });
            if let Some(key) = key {
                retire(&mut state, &key);
                wake = true;
            }
        }
        drop(state);
        if wake {
            self.wake_reaper.notify_one();
        }
    }

    /// Retires broken, aged and idle entries; returns those ready to disconnect and the next
    /// time something expires.
    fn sweep(&self, now: Instant) -> (Vec<EntryRef<C>>, Option<Instant>) {
        let mut state = self.lock();
        let expired: Vec<InstanceId> = state
            .slots
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Ready(entry) if !self.is_usable(entry, now) => Some(key.clone()),
                _ => None,
            })
            .collect();
        for key in &expired {
            retire(&mut state, key);
        }
        let mut to_close = Vec::new();
        state.retired.retain(|entry| {
            if entry.leases() == 0 {
                to_close.push(entry.clone());
                false
            } else {
                true
            }
        });
        let next = state
            .slots
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(entry) => {
                    let aged = entry.created + self.config.max_lifetime;
                    let idle = (entry.leases() == 0)
                        .then(|| entry.last_used(self.epoch()) + self.config.idle_timeout);
                    Some(idle.map_or(aged, |idle| idle.min(aged)))
                }
                Slot::Connecting { .. } => None,
            })
            .min();
        (to_close, next)
    }
}

impl<C: Connector> Drop for Shared<C> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Moves a `Ready` entry out of the map into the retired list.
fn retire<C: Connector>(state: &mut State<C>, key: &InstanceId) {
    if let Some(Slot::Ready(entry)) = state.slots.remove(key) {
        entry.retired.store(true, Ordering::Relaxed);
        state.retired.push(entry);
    }
}

fn least_recently_used_idle<C: Connector>(
    state: &State<C>,
    except: Option<&InstanceId>,
    epoch: Instant,
) -> Option<InstanceId> {
    state
        .slots
        .iter()
        .filter_map(|(key, slot)| match slot {
            Slot::Ready(entry) if entry.leases() == 0 && Some(key) != except => {
                Some((entry.last_used(epoch), key))
            }
            _ => None,
        })
        .min_by_key(|(used, _)| *used)
        .map(|(_, key)| key.clone())
}

/// Owned by the setup task: publishes its outcome, and if the task ends without one (cancelled
/// or panicked) clears the key so that waiters retry instead of hanging.
struct SetupGuard<C: Connector> {
    shared: Weak<Shared<C>>,
    instance: InstanceId,
    setup: u64,
    tx: Option<watch::Sender<Outcome<C::Error>>>,
}

impl<C: Connector> SetupGuard<C> {
    fn succeed(mut self, conn: C::Conn, tunnel: TunnelSlot) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let config = &shared.config;
        let entry = Arc::new(Entry {
            conn,
            created: now,
            channels: Arc::new(Semaphore::new(config.max_ops_per_connection)),
            shells: Arc::new(Semaphore::new(config.max_shells_per_connection)),
            leases: AtomicUsize::new(0),
            last_used: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            _tunnel: tunnel,
            _live: LiveConnection::new(shared.counters.clone()),
        });
        entry.stamp(now, shared.epoch());
        let mut state = shared.lock();
        if !self.owns_slot(&state) {
            // Closed meanwhile: the entry is dropped right here, which closes the connection.
            return;
        }
        state
            .slots
            .insert(self.instance.clone(), Slot::Ready(entry));
        while state
            .slots
            .values()
            .filter(|slot| matches!(slot, Slot::Ready(_)))
            .count()
            > config.max_connections
        {
            let Some(victim) =
                least_recently_used_idle(&state, Some(&self.instance), shared.epoch())
            else {
                break; // every other connection is busy: the cap is soft, like the original's
            };
            retire(&mut state, &victim);
        }
        drop(state);
        // The reaper learns the new entry's deadlines (and closes any evicted one).
        shared.wake_reaper.notify_one();
        self.publish(Outcome::Ready);
    }

    fn fail(mut self, err: C::Error) {
        if let Some(shared) = self.shared.upgrade() {
            shared
                .counters
                .setups_failed
                .fetch_add(1, Ordering::Relaxed);
            let mut state = shared.lock();
            if self.owns_slot(&state) {
                state.slots.remove(&self.instance);
            }
        }
        self.publish(Outcome::Failed(err));
    }

    fn owns_slot(&self, state: &State<C>) -> bool {
        matches!(
            state.slots.get(&self.instance),
            Some(Slot::Connecting { setup, .. }) if *setup == self.setup
        )
    }

    fn publish(&mut self, outcome: Outcome<C::Error>) {
        if let Some(tx) = self.tx.take() {
            tx.send_replace(outcome);
        }
    }
}

impl<C: Connector> Drop for SetupGuard<C> {
    fn drop(&mut self) {
        if self.tx.is_none() {
            return;
        }
        if let Some(shared) = self.shared.upgrade() {
            let mut state = shared.lock();
            if self.owns_slot(&state) {
                state.slots.remove(&self.instance);
            }
        }
        // Dropping the sender without an outcome tells the waiters to retry.
        self.tx.take();
    }
}

/// Counts an operation waiting for a operation slot, also when its caller gives up.
struct QueuedGuard<'a> {
    counters: &'a Counters,
}

impl<'a> QueuedGuard<'a> {
    fn new(counters: &'a Counters) -> Self {
        let queued = counters.queued.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::operations_queued(queued);
        Self { counters }
    }
}

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        let queued = self.counters.queued.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::operations_queued(queued);
    }
}

async fn disconnect<C: Connector>(connector: &C, entry: Arc<Entry<C::Conn>>) {
    if tokio::time::timeout(DISCONNECT_TIMEOUT, connector.disconnect(&entry.conn))
        .await
        .is_err()
    {
        tracing::warn!("connection did not disconnect in time; dropping it");
    }
}

/// Closes retired connections and wakes up when the next one expires. Holds only a `Weak` to
/// the pool and exits when the pool is dropped or closed.
async fn reap<C: Connector>(
    shared: Weak<Shared<C>>,
    connector: Arc<C>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    loop {
        let Some(pool) = shared.upgrade() else {
            return;
        };
        let (to_close, next) = pool.sweep(Instant::now());
        drop(pool);
        for entry in to_close {
            disconnect(&*connector, entry).await;
        }
        let deadline = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests;
