//! An exact read-through cache of `GET /workspaces/{id}`'s 200 bodies, per workspace.
//!
//! Exact across replicas: a trigger announces every change to `workspaces` or `canvas_layouts` on
//! [`CHANNEL`], and the events hub's listener relays it here ([`WorkspaceCache::invalidate_announced`]).
//! The cache is used only while that listener is connected: a lost connection may have lost
//! announcements, so the cache is emptied and bypassed until the next `LISTEN`. A read fills the
//! cache only if its workspace was not invalidated (nor the whole cache cleared) since before its
//! query ([`FillTicket`]), so a body read before a change can never land after that change's
//! invalidation, while other workspaces' changes (every agent's heartbeat) refuse nothing. Writes
//! through this process invalidate at once ([`InvalidateAfterWrite`]), so a client reads its
//! own writes.
//!
//! The A2A proxy's view of its target ([`store::messaging::ProxyTarget`], read from `workspaces`
//! only) is kept here too, under the same rules ([`WorkspaceCache::lookup_target`]).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use store::messaging::ProxyTarget;
use uuid::Uuid;

/// The notification channel of the `workspace_changed` triggers; the payload is the workspace id.
pub const CHANNEL: &str = "workspace_changed";
/// `GET /workspaces/{id}` answered from the cache.
pub const HITS_TOTAL: &str = "molecule_workspace_cache_hits_total";
/// `GET /workspaces/{id}` that read the database (including while the cache is bypassed).
pub const MISSES_TOTAL: &str = "molecule_workspace_cache_misses_total";
/// At most this many bodies are kept; a full cache is emptied rather than tracked for recency.
const CAPACITY: usize = 10_000;

/// The process's cache. Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct WorkspaceCache(Arc<Mutex<Entries>>);

/// Everything under one lock, so a fill's check of the generations and its insert cannot
/// interleave with an invalidation. The lock is never held across an `.await`.
#[derive(Default)]
struct Entries {
    bodies: HashMap<Uuid, Bytes>,
    targets: HashMap<Uuid, ProxyTarget>,
    /// Bumped by every invalidation, clear and listener transition.
    generation: u64,
    /// The generation of each workspace's latest invalidation. Bounded: when it outgrows
    /// [`CAPACITY`] it is forgotten and counted as a clear (refusing every older fill).
    invalidated_at: HashMap<Uuid, u64>,
    /// The generation of the latest clear or listener transition.
    cleared_at: u64,
    /// Whether the listener is connected and listening on [`CHANNEL`].
    listening: bool,
}

/// The outcome of [`WorkspaceCache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    Hit(Bytes),
    /// Read the database, then hand the body back with [`WorkspaceCache::fill`].
    Miss(FillTicket),
}

/// Taken before the database read: the fill is refused if its workspace was invalidated or the
/// cache cleared since, or if the cache was bypassed when it was taken.
#[derive(Debug)]
#[must_use]
pub struct FillTicket {
    generation: Option<u64>,
}

impl std::fmt::Debug for WorkspaceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries();
        f.debug_struct("WorkspaceCache")
            .field("len", &entries.bodies.len())
            .field("generation", &entries.generation)
            .field("listening", &entries.listening)
            .finish()
    }
}

impl WorkspaceCache {
    /// Registers the help texts; call once after installing the metrics recorder.
    pub fn describe() {
        metrics::describe_counter!(HITS_TOTAL, "GET /workspaces/{id} answered from the cache");
        metrics::describe_counter!(MISSES_TOTAL, "GET /workspaces/{id} read from the database");
    }

    /// The cached body of `id`, or a ticket to fill it after reading the database.
    pub fn lookup(&self, id: Uuid) -> Lookup {
        let entries = self.entries();
        if let Some(body) = entries.bodies.get(&id).filter(|_| entries.listening) {
            metrics::counter!(HITS_TOTAL).increment(1);
            return Lookup::Hit(body.clone());
        }
        metrics::counter!(MISSES_TOTAL).increment(1);
        Lookup::Miss(entries.ticket())
    }

    /// Stores the 200 body of `id` read with `ticket`, unless it may be stale by now.
    pub fn fill(&self, ticket: FillTicket, id: Uuid, body: Bytes) {
        let mut entries = self.entries();
        if !entries.admits(&ticket, id) {
            return;
        }
        if entries.bodies.len() >= CAPACITY && !entries.bodies.contains_key(&id) {
            entries.bodies.clear();
        }
        entries.bodies.insert(id, body);
    }

    /// The proxy's cached target `id`, or a ticket to fill it after reading the database.
    pub fn lookup_target(&self, id: Uuid) -> Result<ProxyTarget, FillTicket> {
        let entries = self.entries();
        match entries.targets.get(&id).filter(|_| entries.listening) {
            Some(target) => Ok(target.clone()),
            None => Err(entries.ticket()),
        }
    }

    /// Stores the target `id` read with `ticket`, unless it may be stale by now.
    pub fn fill_target(&self, ticket: FillTicket, id: Uuid, target: ProxyTarget) {
        let mut entries = self.entries();
        if !entries.admits(&ticket, id) {
            return;
        }
        if entries.targets.len() >= CAPACITY && !entries.targets.contains_key(&id) {
            entries.targets.clear();
        }
        entries.targets.insert(id, target);
    }

    /// Drops the body and target of `id` and refuses the fills of reads in flight.
    pub fn invalidate(&self, id: Uuid) {
        let mut entries = self.entries();
        entries.generation += 1;
        let generation = entries.generation;
        entries.bodies.remove(&id);
        entries.targets.remove(&id);
        if entries.invalidated_at.len() >= CAPACITY && !entries.invalidated_at.contains_key(&id) {
            entries.invalidated_at.clear();
            entries.cleared_at = generation;
        }
        entries.invalidated_at.insert(id, generation);
    }

    /// Drops every body and target and refuses the fills of reads in flight.
    pub fn clear(&self) {
        self.entries().clear();
    }

    /// Applies one notification of [`CHANNEL`]: a workspace id, or anything else (a TRUNCATE's
    /// empty payload) to clear everything.
    pub fn invalidate_announced(&self, payload: &str) {
        match Uuid::parse_str(payload) {
            Ok(id) => self.invalidate(id),
            Err(_) => self.clear(),
        }
    }

    /// Whether the cache is in use (its listener is connected).
    pub fn is_listening(&self) -> bool {
        self.entries().listening
    }

    /// Called by the listener once it listens on [`CHANNEL`]: the cache starts empty (changes
    /// made while nobody listened were never announced to it) and stays in use until the
    /// returned guard is dropped, when the connection ends for whatever reason.
    pub fn start_listening(&self) -> ListeningGuard {
        self.set_listening(true);
        ListeningGuard(self.clone())
    }

    fn set_listening(&self, listening: bool) {
        let mut entries = self.entries();
        entries.listening = listening;
        entries.clear();
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves consistent data (every update is one statement
        // after the checks), so a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Entries {
    /// A ticket for a read starting now (an unusable one while the cache is bypassed).
    fn ticket(&self) -> FillTicket {
        FillTicket {
            generation: self.listening.then_some(self.generation),
        }
    }

    fn clear(&mut self) {
        self.generation += 1;
        self.cleared_at = self.generation;
        self.invalidated_at.clear();
        self.bodies.clear();
        self.targets.clear();
    }

    /// Whether a read of `id` made with `ticket` may still be stored: the cache is in use, was in
    /// use when the ticket was taken, and neither `id` nor everything was invalidated since.
    fn admits(&self, ticket: &FillTicket, id: Uuid) -> bool {
        let Some(taken_at) = ticket.generation.filter(|_| self.listening) else {
            return false;
        };
        let invalidated_at = self.invalidated_at.get(&id).copied().unwrap_or(0);
        taken_at >= self.cleared_at && taken_at >= invalidated_at
    }
}

/// Keeps the cache in use while the listener's connection lives; see
/// [`WorkspaceCache::start_listening`].
#[derive(Debug)]
#[must_use]
pub struct ListeningGuard(WorkspaceCache);

impl Drop for ListeningGuard {
    fn drop(&mut self) {
        self.0.set_listening(false);
    }
}

/// Routes outside `/workspaces/{id}/…` whose writes touch no row of `workspaces` or
/// `canvas_layouts` that a cached body was read from: creation inserts a row no 200 was ever
/// cached for; the others write secrets, tokens, templates, memories, the A2A queue or the
/// canvas viewport (`canvas_viewport`, not `canvas_layouts`).
const WRITES_NO_CACHED_ROW: [&str; 7] = [
    "/workspaces",
    "/admin/a2a-queue/drop-stale",
    "/templates/import",
    "/settings/secrets",
    "/admin/secrets",
    "/org/tokens",
    "/canvas/viewport",
];
/// The same, for route patterns under these prefixes (`/settings/secrets/{key}`, …).
const WRITES_NO_CACHED_ROW_UNDER: [&str; 4] = [
    "/settings/secrets/",
    "/admin/secrets/",
    "/org/tokens/",
    "/admin/memories/",
];

/// Middleware: after any request that may write (not GET, HEAD or OPTIONS), invalidates the
/// workspace its path names, or clears the cache when a route's write may reach workspaces its
/// path does not name (a cascading delete, an adoption). Nothing for a path no route serves, for
/// a route that writes no cached row (`WRITES_NO_CACHED_ROW`), nor for the agents'
/// `/registry/*` routes: their handlers invalidate the one workspace they wrote, so a heartbeat
/// never empties the cache. It runs whatever the status, since a failed request may still have
/// committed something; the database trigger covers the other replicas.
#[derive(Debug, Clone, Default)]
pub struct InvalidateAfterWrite(pub WorkspaceCache);

/// What a request's write leaves to invalidate once it is answered.
#[derive(Debug)]
pub enum Written {
    /// Nothing: a read, or a write its handler invalidates itself.
    Nothing,
    Workspace(Uuid),
    /// Anything: the whole cache goes.
    Unknown,
}

impl crate::middleware::sync::Middleware for InvalidateAfterWrite {
    type Carry = Written;

    fn before(&self, request: &mut Request) -> ControlFlow<Response, Written> {
        let method = request.method();
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return ControlFlow::Continue(Written::Nothing);
        }
        let path = request.uri().path();
        let pattern = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let handled = match pattern {
            None => true,
            Some(pattern) => {
                path.starts_with("/registry/")
                    || is_a2a_call(method, path)
                    || WRITES_NO_CACHED_ROW.contains(&pattern)
                    || WRITES_NO_CACHED_ROW_UNDER
                        .iter()
                        .any(|prefix| pattern.starts_with(prefix))
            }
        };
        ControlFlow::Continue(match (handled, only_workspace_written(method, path)) {
            (true, _) => Written::Nothing,
            (false, Some(id)) => Written::Workspace(id),
            (false, None) => Written::Unknown,
        })
    }

    fn after(&self, written: Written, response: Response) -> Response {
        match written {
            Written::Nothing => {}
            Written::Workspace(id) => self.0.invalidate(id),
            Written::Unknown => self.0.clear(),
        }
        response
    }
}

/// `POST /workspaces/{id}/a2a`: a call writes no workspace row but through its handler, which
/// invalidates the one it marks unreachable; the caller's `last_outbound_at` (written in the
/// background) reaches the cache through the trigger. Without this, every call would drop its
/// target's entry.
fn is_a2a_call(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && path
            .strip_prefix("/workspaces/")
            .and_then(|rest| rest.strip_suffix("/a2a"))
            .is_some_and(|id| !id.contains('/'))
}

/// The one workspace a write to `path` can change, when there is exactly one: the `{id}` of
/// `/workspaces/{id}/…` or `/admin/workspaces/{id}/…`, except deleting the workspace itself
/// (which cascades to descendants).
fn only_workspace_written(method: &Method, path: &str) -> Option<Uuid> {
    let rest = path
        .strip_prefix("/workspaces/")
        .or_else(|| path.strip_prefix("/admin/workspaces/"))?;
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let id = Uuid::parse_str(id).ok()?;
    let deletes_the_workspace = *method == Method::DELETE && tail.is_empty();
    (!deletes_the_workspace).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(cache: &WorkspaceCache, id: Uuid) -> Option<Bytes> {
        match cache.lookup(id) {
            Lookup::Hit(body) => Some(body),
            Lookup::Miss(_) => None,
        }
    }

    fn fill(cache: &WorkspaceCache, id: Uuid, body: &'static str) {
        let Lookup::Miss(ticket) = cache.lookup(id) else {
            panic!("expected a miss")
        };
        cache.fill(ticket, id, Bytes::from_static(body.as_bytes()));
    }

    #[test]
    fn bypassed_until_listening_and_emptied_when_the_listener_stops() {
        let cache = WorkspaceCache::default();
        let id = Uuid::new_v4();
        fill(&cache, id, "a");
        assert_eq!(hit(&cache, id), None, "not listening: nothing is stored");

        let listening = cache.start_listening();
        fill(&cache, id, "a");
        assert_eq!(hit(&cache, id).as_deref(), Some(&b"a"[..]));

        drop(listening);
        assert!(!cache.is_listening());
        assert_eq!(hit(&cache, id), None);
        let _listening = cache.start_listening();
        assert_eq!(hit(&cache, id), None, "a reconnect starts empty");
    }

    #[test]
    fn a_fill_after_an_invalidation_is_refused() {
        let cache = WorkspaceCache::default();
        let _listening = cache.start_listening();
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());

        let Lookup::Miss(ticket) = cache.lookup(id) else {
            panic!("expected a miss")
        };
        cache.invalidate(id);
        cache.fill(ticket, id, Bytes::from_static(b"stale"));
        assert_eq!(hit(&cache, id), None);

        let Lookup::Miss(ticket) = cache.lookup(id) else {
            panic!("expected a miss")
        };
        cache.invalidate(other);
        cache.fill(ticket, id, Bytes::from_static(b"fresh"));
        assert_eq!(
            hit(&cache, id).as_deref(),
            Some(&b"fresh"[..]),
            "another workspace's change refuses nothing"
        );
        cache.invalidate(id);

        let Lookup::Miss(ticket) = cache.lookup(id) else {
            panic!("expected a miss")
        };
        cache.clear();
        cache.fill(ticket, id, Bytes::from_static(b"stale"));
        assert_eq!(hit(&cache, id), None, "a clear refuses older fills");

        let Lookup::Miss(ticket) = cache.lookup(id) else {
            panic!("expected a miss")
        };
        let reconnected = cache.start_listening();
        cache.fill(ticket, id, Bytes::from_static(b"stale"));
        assert_eq!(
            hit(&cache, id),
            None,
            "a reconnect also refuses older fills"
        );
        drop(reconnected);
    }

    #[test]
    fn announcements_invalidate_one_or_all() {
        let cache = WorkspaceCache::default();
        let _listening = cache.start_listening();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        fill(&cache, a, "a");
        fill(&cache, b, "b");
        cache.invalidate_announced(&a.to_string());
        assert_eq!(hit(&cache, a), None);
        assert!(hit(&cache, b).is_some());
        cache.invalidate_announced("");
        assert_eq!(hit(&cache, b), None);
    }

    #[test]
    fn proxy_targets_follow_the_same_rules() {
        let cache = WorkspaceCache::default();
        let id = Uuid::new_v4();
        let target = ProxyTarget {
            name: "a".into(),
            url: Some("http://agent:8000".into()),
            status: "online".into(),
            delivery_mode: "push".into(),
            runtime: "langgraph".into(),
            budget_limit: None,
            monthly_spend: 0,
        };
        let ticket = cache.lookup_target(id).unwrap_err();
        cache.fill_target(ticket, id, target.clone());
        assert!(
            cache.lookup_target(id).is_err(),
            "not listening: nothing is stored"
        );

        let _listening = cache.start_listening();
        let ticket = cache.lookup_target(id).unwrap_err();
        cache.fill_target(ticket, id, target.clone());
        assert_eq!(cache.lookup_target(id).ok(), Some(target.clone()));
        cache.invalidate_announced(&id.to_string());
        assert!(cache.lookup_target(id).is_err());

        let ticket = cache.lookup_target(id).unwrap_err();
        cache.invalidate(id);
        cache.fill_target(ticket, id, target);
        assert!(
            cache.lookup_target(id).is_err(),
            "a fill after an invalidation"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let cache = WorkspaceCache::default();
        let _listening = cache.start_listening();
        for _ in 0..=CAPACITY {
            fill(&cache, Uuid::new_v4(), "x");
        }
        assert!(cache.entries().bodies.len() <= CAPACITY);

        let id = Uuid::new_v4();
        let Lookup::Miss(ticket) = cache.lookup(id) else {
            panic!("expected a miss")
        };
        cache.invalidate(id);
        for _ in 0..=CAPACITY {
            cache.invalidate(Uuid::new_v4());
        }
        assert!(cache.entries().invalidated_at.len() <= CAPACITY);
        cache.fill(ticket, id, Bytes::from_static(b"stale"));
        assert_eq!(
            hit(&cache, id),
            None,
            "a forgotten invalidation still refuses"
        );
    }

    #[test]
    fn writes_invalidate_their_workspace_or_everything() {
        let id = Uuid::new_v4();
        let one = |method: Method, path: String| only_workspace_written(&method, &path);
        assert_eq!(one(Method::PATCH, format!("/workspaces/{id}")), Some(id));
        assert_eq!(
            one(Method::PUT, format!("/workspaces/{id}/model")),
            Some(id)
        );
        assert_eq!(
            one(Method::DELETE, format!("/workspaces/{id}/files/a")),
            Some(id)
        );
        assert_eq!(one(Method::DELETE, format!("/workspaces/{id}")), None);
        assert_eq!(one(Method::POST, "/workspaces".into()), None);
        assert_eq!(one(Method::POST, "/registry/heartbeat".into()), None);
        assert_eq!(one(Method::PATCH, "/workspaces/not-a-uuid".into()), None);
        assert!(is_a2a_call(&Method::POST, &format!("/workspaces/{id}/a2a")));
        assert!(!is_a2a_call(
            &Method::POST,
            &format!("/workspaces/{id}/a2a/x")
        ));
        assert!(!is_a2a_call(
            &Method::DELETE,
            &format!("/workspaces/{id}/a2a")
        ));
    }
}
