//! Process-level health registries shared by the ops endpoints and the background loops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Last tick of every background loop, for `GET /admin/liveness`.
///
/// Cheap to clone (one `Arc`); each loop calls [`Liveness::tick`] once per iteration.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    ticks: Arc<Mutex<BTreeMap<String, DateTime<Utc>>>>,
}

impl Liveness {
    /// Records that the loop `name` is alive now.
    pub fn tick(&self, name: &str) {
        let now = Utc::now();
        let mut ticks = self
            .ticks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        ticks.insert(name.to_string(), now);
    }

    /// Every loop that ticked at least once, with its last tick, sorted by name.
    pub fn snapshot(&self) -> BTreeMap<String, DateTime<Utc>> {
        self.ticks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Whether the schema migrations have been applied, for `GET /ready`.
///
/// The server may come up before the database does (an external `DATABASE_URL` that is not
/// reachable yet) and migrate in the background; until then it is not ready.
#[derive(Debug, Clone, Default)]
pub struct SchemaStatus {
    migrated: Arc<AtomicBool>,
}

impl SchemaStatus {
    /// A status that already says "migrated" (tests that migrate before building the state).
    pub fn migrated() -> Self {
        let status = Self::default();
        status.mark_migrated();
        status
    }

    pub fn mark_migrated(&self) {
        self.migrated.store(true, Ordering::Release);
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_keeps_the_last_tick_per_name() {
        let liveness = Liveness::default();
        assert!(liveness.snapshot().is_empty());
        liveness.tick("scheduler");
        let first = liveness.snapshot()["scheduler"];
        liveness.clone().tick("scheduler");
        liveness.tick("sweeper");
        let snapshot = liveness.snapshot();
        assert_eq!(
            snapshot.keys().collect::<Vec<_>>(),
            ["scheduler", "sweeper"]
        );
        assert!(snapshot["scheduler"] >= first);
    }

    #[test]
    fn schema_status_is_shared_between_clones() {
        let status = SchemaStatus::default();
        let clone = status.clone();
        assert!(!clone.is_migrated());
        status.mark_migrated();
        assert!(clone.is_migrated());
        assert!(SchemaStatus::migrated().is_migrated());
    }
}
