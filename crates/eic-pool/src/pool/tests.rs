//! The pool against a fake connector, in paused time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

const SETUP_TIME: Duration = Duration::from_millis(500);

#[derive(Default)]
struct FakeState {
    setups: AtomicUsize,
    disconnects: AtomicUsize,
    dropped: Arc<AtomicUsize>,
    /// Setups that fail, counted down.
    failures: AtomicUsize,
    /// Setups that panic, counted down.
    panics: AtomicUsize,
    /// Connections handed out, by setup number, so tests can break their transport.
    conns: Mutex<Vec<Arc<AtomicBool>>>,
    /// How long each disconnect takes.
    disconnect_time: Mutex<Duration>,
}

#[derive(Clone, Default)]
struct Fake(Arc<FakeState>);

struct FakeConn {
    setup: usize,
    closed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Connector for Fake {
    type Conn = FakeConn;
    type Error = String;

    async fn connect(&self, instance: &InstanceId) -> Result<FakeConn, String> {
        let setup = self.0.setups.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(SETUP_TIME).await;
        if take_one(&self.0.panics) {
            panic!("setup {setup} panicked");
        }
        if take_one(&self.0.failures) {
            return Err(format!("setup {setup} of {instance} failed"));
        }
        let closed = Arc::new(AtomicBool::new(false));
        self.0.conns.lock().unwrap().push(closed.clone());
        Ok(FakeConn {
            setup,
            closed,
            dropped: self.0.dropped.clone(),
        })
    }

    fn is_broken(&self, conn: &FakeConn) -> bool {
        conn.closed.load(Ordering::SeqCst)
    }

    async fn disconnect(&self, _conn: &FakeConn) {
        let time = *self.0.disconnect_time.lock().unwrap();
        tokio::time::sleep(time).await;
        self.0.disconnects.fetch_add(1, Ordering::SeqCst);
    }
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Fake {
    fn setups(&self) -> usize {
        self.0.setups.load(Ordering::SeqCst)
    }
    fn disconnects(&self) -> usize {
        self.0.disconnects.load(Ordering::SeqCst)
    }
    fn dropped(&self) -> usize {
        self.0.dropped.load(Ordering::SeqCst)
    }
}

fn config() -> PoolConfig {
    PoolConfig {
        idle_timeout: Duration::from_secs(60),
        max_lifetime: Duration::from_secs(3300),
        max_connections: 32,
        max_tunnels: 16,
        max_ops_per_connection: 8,
        max_shells_per_connection: 3,
        shell_max_age: Duration::from_secs(1800),
    }
}

fn pool_with(config: PoolConfig) -> (Pool<Fake>, Fake) {
    let fake = Fake::default();
    (Pool::new(fake.clone(), config), fake)
}

fn id(name: &str) -> InstanceId {
    InstanceId::new(name)
}

/// Lets spawned tasks (setups, the reaper) run; time is paused, so this costs nothing.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn hundred_operations_share_one_setup() {
    let (pool, fake) = pool_with(config());
    for _ in 0..100 {
        let lease = pool.acquire(&id("i-a")).await.unwrap();
        assert_eq!(lease.setup, 1);
    }
    assert_eq!(fake.setups(), 1);
    assert_eq!(pool.status().connections, 1);
    assert_eq!(pool.status().leases, 0);
}

#[tokio::test(start_paused = true)]
async fn different_instances_do_not_share() {
    let (pool, fake) = pool_with(config());
    let a = pool.acquire(&id("i-a")).await.unwrap();
    let b = pool.acquire(&id("i-b")).await.unwrap();
    assert_ne!(a.setup, b.setup);
    assert_eq!(fake.setups(), 2);
    assert_eq!(pool.status().connections, 2);
}

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_first_calls_make_one_setup() {
    let (pool, fake) = pool_with(config());
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(&id("i-a")).await.map(|l| l.setup) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 1);
    }
    assert_eq!(fake.setups(), 1);
    assert_eq!(pool.status().leases, 0);
}

#[tokio::test(start_paused = true)]
async fn failed_setup_reaches_every_waiter_and_the_next_call_retries() {
    let (pool, fake) = pool_with(config());
    fake.0.failures.store(1, Ordering::SeqCst);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(&id("i-a")).await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        match call.await.unwrap() {
            Err(AcquireError::Setup(message)) => assert_eq!(message, "setup 1 of i-a failed"),
            other => panic!("expected the setup error, got {other:?}"),
        }
    }
    assert_eq!(fake.setups(), 1);
    assert_eq!(pool.status().setups_failed, 1);

    let lease = pool.acquire(&id("i-a")).await.unwrap();
    assert_eq!(lease.setup, 2);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_first_caller_does_not_strand_the_others() {
    let (pool, fake) = pool_with(config());
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire(&id("i-a")).await.map(|_| ()) })
    };
    settle().await; // the first caller has started the setup
    let others: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(&id("i-a")).await.map(|l| l.setup) })
        })
        .collect();
    settle().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for call in others {
        assert_eq!(call.await.unwrap().unwrap(), 1);
    }
    assert_eq!(fake.setups(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_caller_does_not_strand_the_others() {
    let (pool, fake) = pool_with(config());
    let impatient = tokio::time::timeout(SETUP_TIME / 2, pool.acquire(&id("i-a"))).await;
    assert!(impatient.is_err());
    let lease = pool.acquire(&id("i-a")).await.unwrap();
    assert_eq!(lease.setup, 1);
    assert_eq!(fake.setups(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_setup_does_not_wedge_the_key() {
    let (pool, fake) = pool_with(config());
    fake.0.panics.store(1, Ordering::SeqCst);
    let lease = pool.acquire(&id("i-a")).await.unwrap();
    assert_eq!(lease.setup, 2);

    drop(lease);
    fake.0.panics.store(2, Ordering::SeqCst);
    assert!(matches!(
        pool.acquire(&id("i-b")).await,
        Err(AcquireError::SetupAborted)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_poisoned_connection_is_replaced_at_once() {
    let (pool, fake) = pool_with(config());
    let lease = pool.acquire(&id("i-a")).await.unwrap();
    lease.poison();
    drop(lease);
    let lease = pool.acquire(&id("i-a")).await.unwrap();
    assert_eq!(lease.setup, 2);
    settle().await;
    assert_eq!(fake.disconnects(), 1);
    assert_eq!(fake.dropped(), 1);
    assert_eq!(pool.status().connections, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_with_a_closed_transport_is_replaced() {
    let (pool, fake) = pool_with(config());
    drop(pool.acquire(&id("i-a")).await.unwrap());
    fake.0.conns.lock().unwrap()[0].store(true, Ordering::SeqCst);
    let lease = pool.acquire(&id("i-a")).await.unwrap();
    assert_eq!(lease.setup, 2);
    settle().await;
    assert_eq!(fake.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn other_leases_finish_on_a_poisoned_connection() {
    let (pool, fake) = pool_with(config());
    let a = pool.acquire(&id("i-a")).await.unwrap();
    let b = pool.acquire(&id("i-a")).await.unwrap();
    a.poison();
    drop(a);
    settle().await;
    assert_eq!(fake.dropped(), 0, "b still uses the connection");
    assert_eq!(b.setup, 1);
    drop(b);
    settle().await;
    assert_eq!(fake.disconnects(), 1);
    assert_eq!(fake.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed() {
    let (pool, fake) = pool_with(config());
    drop(pool.acquire(&id("i-a")).await.unwrap());
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(pool.status().connections, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.disconnects(), 1);
    assert_eq!(pool.status().connections, 0);
    assert_eq!(pool.status().tunnels, 0);

    let lease = pool.acquire(&id("i-a")).await.unwrap();
    assert_eq!(lease.setup, 2);
}

#[tokio::test(start_paused = true)]
async fn a_leased_connection_is_not_idle() {
    let (pool, fake) = pool_with(config());
    let lease = pool.acquire(&id("i-a")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(fake.disconnects(), 0);
    drop(lease);
    assert_eq!(pool.acquire(&id("i-a")).await.unwrap().setup, 1);
}

#[tokio::test(start_paused = true)]
async fn connections_are_recycled_before_their_maximum_lifetime() {
    let (pool, fake) = pool_with(config());
    let held = pool.acquire(&id("i-a")).await.unwrap();
    // Busy all along (never idle), yet replaced once it is too old.
    for _ in 0..330 {
        drop(pool.acquire(&id("i-a")).await.unwrap());
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let fresh = pool.acquire(&id("i-a")).await.unwrap();
    assert_eq!(fresh.setup, 2);
    assert_eq!(
        fake.dropped(),
        0,
        "the old connection lives until its last lease ends"
    );
    drop(held);
    settle().await;
    assert_eq!(fake.dropped(), 1);
    assert_eq!(pool.status().connections, 1);
}

#[tokio::test(start_paused = true)]
async fn least_recently_used_idle_connection_goes_first_at_the_cap() {
    let (pool, fake) = pool_with(PoolConfig {
        max_connections: 2,
        ..config()
    });
    drop(pool.acquire(&id("i-a")).await.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(pool.acquire(&id("i-b")).await.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(pool.acquire(&id("i-a")).await.unwrap()); // a is now more recent than b
    drop(pool.acquire(&id("i-c")).await.unwrap());
    settle().await;
    assert_eq!(fake.setups(), 3);
    assert_eq!(fake.disconnects(), 1);
    assert_eq!(pool.status().connections, 2);

    assert_eq!(
        pool.acquire(&id("i-a")).await.unwrap().setup,
        1,
        "a was kept"
    );
    assert_eq!(
        pool.acquire(&id("i-b")).await.unwrap().setup,
        4,
        "b was closed"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_tunnel_makes_room_for_a_needed_one() {
    let (pool, fake) = pool_with(PoolConfig {
        max_tunnels: 1,
        ..config()
    });
    drop(pool.acquire(&id("i-a")).await.unwrap());
    let b = pool.acquire(&id("i-b")).await.unwrap();
    assert_eq!(b.setup, 2);
    assert_eq!(fake.disconnects(), 1);
    assert_eq!(pool.status().tunnels, 1);
}

#[tokio::test(start_paused = true)]
async fn the_ninth_operation_queues_until_a_channel_is_free() {
    let (pool, _fake) = pool_with(config());
    let mut leases = Vec::new();
    for _ in 0..8 {
        leases.push(pool.acquire(&id("i-a")).await.unwrap());
    }
    let ninth = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire(&id("i-a")).await.map(|l| l.setup) })
    };
    settle().await;
    assert!(!ninth.is_finished());
    assert_eq!(pool.status().queued, 1);
    leases.pop();
    assert_eq!(ninth.await.unwrap().unwrap(), 1);
    assert_eq!(pool.status().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_queued_caller_that_gives_up_leaves_no_trace() {
    let (pool, _fake) = pool_with(config());
    let key = id("i-a");
    let leases: Vec<_> = futures_util::future::join_all((0..8).map(|_| pool.acquire(&key)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let gave_up = tokio::time::timeout(Duration::from_secs(1), pool.acquire(&id("i-a"))).await;
    assert!(gave_up.is_err());
    assert_eq!(pool.status().queued, 0);
    assert_eq!(pool.status().leases, 8);
    drop(leases);
    assert_eq!(pool.status().leases, 0);
}

#[tokio::test(start_paused = true)]
async fn a_panic_inside_an_operation_leaks_nothing() {
    let (pool, fake) = pool_with(config());
    let crashed = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let _lease = pool.acquire(&id("i-a")).await.unwrap();
            panic!("operation failed halfway");
        })
    };
    assert!(crashed.await.unwrap_err().is_panic());
    settle().await;
    let status = pool.status();
    assert_eq!((status.leases, status.queued), (0, 0));
    assert_eq!(
        status.connections, 0,
        "the half-used connection was dropped"
    );
    assert_eq!(fake.dropped(), 1);
    // All eight channel slots are available on the fresh connection.
    let key = id("i-a");
    let leases: Vec<_> = futures_util::future::join_all((0..8).map(|_| pool.acquire(&key)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(leases.iter().all(|l| l.setup == 2));
}

#[tokio::test(start_paused = true)]
async fn close_refuses_new_leases_and_disconnects_idle_connections() {
    let (pool, fake) = pool_with(config());
    drop(pool.acquire(&id("i-a")).await.unwrap());
    let busy = pool.acquire(&id("i-b")).await.unwrap();
    pool.close().await;
    assert!(pool.tasks_ended(), "the reaper outlived close");
    assert_eq!(fake.disconnects(), 1);
    assert!(matches!(
        pool.acquire(&id("i-a")).await,
        Err(AcquireError::Closed)
    ));
    drop(busy);
    assert_eq!(pool.status().connections, 0);
    assert_eq!(fake.dropped(), 2);
}

/// SIGTERM's close of 32 open connections, each of whose disconnects takes 1 s: they run side by
/// side, so the close takes 1 s, not 32 (the server's `SHUTDOWN_TIMEOUT` is 25 s by default).
#[tokio::test(start_paused = true)]
async fn close_disconnects_thirty_two_connections_concurrently() {
    let config = PoolConfig {
        max_tunnels: 32,
        ..config()
    };
    let (pool, fake) = pool_with(config);
    let ids: Vec<InstanceId> = (0..32).map(|i| id(&format!("i-{i:02}"))).collect();
    let leases = futures_util::future::join_all(ids.iter().map(|i| pool.acquire(i))).await;
    drop(leases.into_iter().map(Result::unwrap).collect::<Vec<_>>());
    assert_eq!(pool.status().connections, 32);
    *fake.0.disconnect_time.lock().unwrap() = Duration::from_secs(1);

    let started = tokio::time::Instant::now();
    pool.close().await;
    let took = started.elapsed();
    assert_eq!(fake.disconnects(), 32);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "32 disconnects of 1 s each took {took:?} (in sequence: 32 s)"
    );
    assert_eq!(fake.dropped(), 32);
}

#[tokio::test(start_paused = true)]
async fn close_during_a_setup_fails_its_waiters() {
    let (pool, _fake) = pool_with(config());
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire(&id("i-a")).await.map(|_| ()) })
    };
    settle().await;
    pool.close().await;
    assert!(pool.tasks_ended(), "the setup in flight outlived close");
    assert!(matches!(waiting.await.unwrap(), Err(AcquireError::Closed)));
    assert_eq!(pool.status().tunnels, 0);
}

#[tokio::test(start_paused = true)]
async fn the_reaper_stops_when_the_pool_is_dropped() {
    let (pool, fake) = pool_with(config());
    drop(pool.acquire(&id("i-a")).await.unwrap());
    let weak = Arc::downgrade(&pool.shared);
    drop(pool);
    settle().await;
    assert!(weak.upgrade().is_none());
    assert_eq!(fake.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn shells_hold_no_operation_slot_and_are_capped_per_connection() {
    let (pool, fake) = pool_with(PoolConfig {
        max_ops_per_connection: 1,
        ..config()
    });
    let a = id("i-a");
    let mut shells = Vec::new();
    for _ in 0..3 {
        shells.push(pool.acquire_shell(&a).await.unwrap());
    }
    assert!(matches!(
        pool.acquire_shell(&a).await,
        Err(AcquireError::ShellsFull(3))
    ));
    // The one operation slot is still free while three shells are open.
    let operation = tokio::time::timeout(Duration::from_secs(1), pool.acquire(&a)).await;
    assert!(operation.is_ok(), "an operation waited behind shells");
    drop(operation);
    drop(shells.pop());
    assert!(
        pool.acquire_shell(&a).await.is_ok(),
        "a closed shell frees its slot"
    );
    assert_eq!(fake.setups(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_shell_gets_a_fresh_connection_near_the_tunnel_deadline() {
    let (pool, fake) = pool_with(config());
    let a = id("i-a");
    let old = pool.acquire(&a).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1801)).await;
    let shell = pool.acquire_shell(&a).await.unwrap();
    assert_eq!((old.setup, shell.setup), (1, 2));
    // The old connection finishes its lease, then closes; operations move to the new one.
    assert_eq!(pool.acquire(&a).await.unwrap().setup, 2);
    drop(old);
    settle().await;
    assert_eq!(fake.disconnects(), 1);
    assert_eq!(pool.status().connections, 1);
}
