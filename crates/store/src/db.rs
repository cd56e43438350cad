//! The database handle: sqlx's pool for transactions, beside a lane of connections for single
//! statements.
//!
//! Why a lane: sqlx's pool sends a `Sync` and waits for `ReadyForQuery` each time a connection
//! returns to it (`sqlx-core` 0.9 `pool/connection.rs`, `Floating::return_to_pool`, not
//! configurable), one more round trip with PostgreSQL and one more spawned task per statement.
//! Most requests run one statement, so that ping was a third of what PostgreSQL and the server
//! did for them. A lane connection goes back to the idle list at once when its statement
//! completed; only a statement interrupted midway (its future dropped) costs that ping, in a task
//! of its own, and one that failed on the wire (not with a database error) is closed.
//!
//! [`Db`] is an [`Executor`]: `&db` runs a statement on the lane (refused once the pool is
//! closed), and it dereferences to the [`PgPool`] for everything else (`begin`, `acquire`,
//! migrations).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use sqlx::postgres::{
    PgConnectOptions, PgDatabaseError, PgQueryResult, PgRow, PgSeverity, PgStatement, PgTypeInfo,
};
use sqlx::{
    ConnectOptions, Connection, Either, Error, Execute, Executor, PgConnection, PgPool, Postgres,
    SqlStr,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::batch::SharedReads;

/// Bound of the goodbye (`Terminate`) to a connection the lane retires.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound of the check of a connection whose statement was interrupted.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The database: `&db` executes one statement on the lane; `db.begin()` and every other pool
/// method go to sqlx's pool through `Deref`. Cloning is two `Arc` increments.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    lane: Arc<Lane>,
    shared: Arc<SharedReads>,
}

impl Db {
    /// `pool` for transactions; a lane of at most `lane_connections` (at least one), connecting
    /// as `pool` does and bounded by its acquire timeout, max lifetime and idle timeout.
    pub fn new(pool: PgPool, lane_connections: u32) -> Self {
        let options = pool.options();
        let max_connections = lane_connections.max(1);
        let lane = Lane {
            max_connections,
            connect: (*pool.connect_options()).clone(),
            permits: Arc::new(Semaphore::new(max_connections as usize)),
            idle: Mutex::new(Vec::new()),
            acquire_timeout: options.get_acquire_timeout(),
            max_lifetime: options.get_max_lifetime(),
            idle_timeout: options.get_idle_timeout(),
        };
        Self {
            pool,
            lane: Arc::new(lane),
            shared: Arc::default(),
        }
    }

    /// The reads concurrent callers of this database share.
    pub(crate) fn shared(&self) -> &SharedReads {
        &self.shared
    }

    /// sqlx's pool (transactions, `LISTEN`, migrations).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connections open, in use or idle: the pool's and the lane's.
    pub fn size(&self) -> u32 {
        self.pool.size() + self.lane.open()
    }

    /// Idle connections: the pool's and the lane's.
    pub fn num_idle(&self) -> usize {
        self.pool.num_idle() + self.lane.lock_idle().len()
    }

    /// Most connections open at once: the pool's and the lane's.
    pub fn max_connections(&self) -> u32 {
        self.pool.options().get_max_connections() + self.lane.max_connections
    }

    /// Refuses new statements, closes the lane's idle connections, then closes the pool.
    /// Connections still leased are closed as their statements end.
    pub async fn close(&self) {
        self.lane.permits.close();
        let idle = std::mem::take(&mut *self.lane.lock_idle());
        for connection in idle {
            close_bounded(connection.connection).await;
        }
        self.pool.close().await;
    }
}

/// A lane as large as the pool: for tests and tools that start from a pool.
impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        let size = pool.options().get_max_connections();
        Self::new(pool, size)
    }
}

impl std::ops::Deref for Db {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

#[derive(Debug)]
struct Lane {
    max_connections: u32,
    connect: PgConnectOptions,
    /// One permit per connection the lane may hold; closed at shutdown.
    permits: Arc<Semaphore>,
    /// Most recently used last: statements reuse the warmest connection, the coldest ages out.
    idle: Mutex<Vec<IdleConnection>>,
    acquire_timeout: Duration,
    max_lifetime: Option<Duration>,
    idle_timeout: Option<Duration>,
}

#[derive(Debug)]
struct IdleConnection {
    connection: PgConnection,
    created_at: Instant,
    idle_since: Instant,
}

impl Lane {
    /// Connections idle or leased (a leased one holds a permit until it is idle or closed).
    fn open(&self) -> u32 {
        let leased = self.max_connections as usize - self.permits.available_permits();
        u32::try_from(self.lock_idle().len() + leased).unwrap_or(u32::MAX)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<IdleConnection>> {
        // The list stays consistent whatever a panicking holder did (a push or a pop).
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit, then the warmest idle connection or a new one.
    async fn lease(self: &Arc<Self>) -> Result<Lease, Error> {
        let permit = match tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(Error::PoolClosed),
            Err(_elapsed) => return Err(Error::PoolTimedOut),
        };
        let (reused, expired) = self.take_idle();
        for connection in expired {
            spawn_close(connection);
        }
        let (connection, created_at) = match reused {
            Some(idle) => (idle.connection, idle.created_at),
            None => {
                let connect = self.connect.connect();
                let connection = tokio::time::timeout(self.acquire_timeout, connect)
                    .await
                    .map_err(|_elapsed| Error::PoolTimedOut)??;
                (connection, Instant::now())
            }
        };
        Ok(Lease {
            connection: Some(connection),
            created_at,
            outcome: Outcome::Interrupted,
            lane: Arc::clone(self),
            permit: Some(permit),
        })
    }

    /// The warmest idle connection, and the ones past their idle timeout or lifetime.
    fn take_idle(&self) -> (Option<IdleConnection>, Vec<PgConnection>) {
        let now = Instant::now();
        let mut idle = self.lock_idle();
        let mut expired = Vec::new();
        while let Some(oldest) = idle.first()
            && self.expired(oldest, now)
        {
            expired.push(idle.remove(0).connection);
        }
        (idle.pop(), expired)
    }

    fn expired(&self, idle: &IdleConnection, now: Instant) -> bool {
        let too_old = self
            .max_lifetime
            .is_some_and(|lifetime| now.duration_since(idle.created_at) >= lifetime);
        let idle_too_long = self
            .idle_timeout
            .is_some_and(|timeout| now.duration_since(idle.idle_since) >= timeout);
        too_old || idle_too_long
    }

    fn give_back(&self, connection: PgConnection, created_at: Instant) {
        if self.permits.is_closed() {
            spawn_close(connection);
            return;
        }
        self.lock_idle().push(IdleConnection {
            connection,
            created_at,
            idle_since: Instant::now(),
        });
    }
}

/// How a lease's statement ended, which decides what its drop does with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Answered, or refused by PostgreSQL with the session still open: reused.
    Completed,
    /// Failed on the wire (I/O, protocol, TLS), or the session ended (a `FATAL` error, as when
    /// the backend is terminated): closed.
    Broken,
    /// Dropped midway: checked with a ping in a task of its own, then reused.
    Interrupted,
}

impl Outcome {
    fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => Outcome::Completed,
            Err(Error::Database(error)) => match error.try_downcast_ref::<PgDatabaseError>() {
                Some(error)
                    if matches!(error.severity(), PgSeverity::Fatal | PgSeverity::Panic) =>
                {
                    Outcome::Broken
                }
                _ => Outcome::Completed,
            },
            Err(_) => Outcome::Broken,
        }
    }
}

/// One connection of the lane and its permit, released on drop as its [`Outcome`] says.
#[derive(Debug)]
struct Lease {
    connection: Option<PgConnection>,
    created_at: Instant,
    outcome: Outcome,
    lane: Arc<Lane>,
    /// Released with the lease, or after the check of an interrupted connection.
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    fn connection(&mut self) -> &mut PgConnection {
        self.connection
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    /// Records how the statement ended and hands its result on.
    fn finish<T>(mut self, result: Result<T, Error>) -> Result<T, Error> {
        self.outcome = Outcome::of(&result);
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        match self.outcome {
            Outcome::Completed => self.lane.give_back(connection, self.created_at),
            Outcome::Broken => drop(connection),
            Outcome::Interrupted => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                // The permit moves into the task: the lane counts this connection until it is
                // known good (back to idle) or closed.
                let lane = Arc::clone(&self.lane);
                let created_at = self.created_at;
                let permit = self.permit.take();
                runtime.spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(PING_TIMEOUT, connection.ping()).await {
                        Ok(Ok(())) => lane.give_back(connection, created_at),
                        _ => tracing::warn!(
                            "a database connection whose statement was interrupted did not answer a ping: closed"
                        ),
                    }
                });
            }
        }
    }
}

fn spawn_close(connection: PgConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(close_bounded(connection));
    }
}

async fn close_bounded(connection: PgConnection) {
    // A connection that does not take its goodbye in time is dropped (its socket closed).
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close()).await;
}

impl Db {
    /// The lane, or `PoolClosed` once the pool was closed (by [`Db::close`] or directly).
    fn open_lane(&self) -> Result<Arc<Lane>, Error> {
        if self.pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        Ok(Arc::clone(&self.lane))
    }
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    /// Collected before it is handed on: the lane's connection must be back before the caller
    /// polls at leisure (`fetch_all`, `execute` and `fetch_one` collect anyway).
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let lane = self.open_lane();
        async move {
            let mut lease = lane?.lease().await?;
            let items = lease
                .connection()
                .fetch_many(query)
                .try_collect::<Vec<_>>()
                .await;
            lease.finish(items)
        }
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let lane = self.open_lane();
        async move {
            let mut lease = lane?.lease().await?;
            let row = lease.connection().fetch_optional(query).await;
            lease.finish(row)
        }
        .boxed()
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, Error>>
    where
        'c: 'e,
    {
        let lane = self.open_lane();
        async move {
            let mut lease = lane?.lease().await?;
            let statement = lease.connection().prepare_with(sql, parameters).await;
            lease.finish(statement)
        }
        .boxed()
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, Error>>
    where
        'c: 'e,
    {
        let lane = self.open_lane();
        async move {
            let mut lease = lane?.lease().await?;
            let described = lease.connection().describe(sql).await;
            lease.finish(described)
        }
        .boxed()
    }
}
