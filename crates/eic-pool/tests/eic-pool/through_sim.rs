//! `EicPool` end to end through `eic-sim` and a real OpenSSH sshd: every file operation, then
//! each fault, asserting a clear error for the operation in flight, recovery on the next call,
//! and no leaked connection or tunnel.
//!
//! Each test starts its own simulator and points the pool at it with explicit settings
//! (`support::config`). Needs root and `openssh-server`.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::INSTANCE;
use eic_pool::{EicConfig, EicError, EicPool, RemoteEntry, Step};
use eic_sim::{FaultsPatch, SimControl, SimProcess};

const LIMIT: u64 = 64 * 1024 * 1024;

struct Harness {
    pool: EicPool,
    control: SimControl,
    /// `<root>/<instance>` on this machine.
    root: PathBuf,
    /// Declared last: the simulator stops after the pool is dropped.
    _sim: SimProcess,
}

impl Harness {
    /// A fresh simulator and a pool pointed at it.
    async fn start() -> Harness {
        let sim = support::sim();
        let config = EicConfig {
            step_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_millis(500),
            ..support::config(sim.info())
        };
        Harness {
            pool: EicPool::new(config).await.unwrap(),
            control: sim.control(),
            root: sim.instance(INSTANCE).root.clone(),
            _sim: sim,
        }
    }

    fn on_disk(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Waits until the pool closed its idle connection and the simulator relays no tunnel.
    async fn assert_no_leaks(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let pool = self.pool.status();
            let sim = self.control.status().await.unwrap();
            if pool.connections == 0
                && pool.tunnels == 0
                && pool.leases == 0
                && sim.live_tunnels == 0
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "leak: pool {pool:?}, simulator {sim:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn set_faults(&self, patch: FaultsPatch) {
        self.control.set_faults(patch).await.unwrap();
    }
}

fn names(entries: &[RemoteEntry]) -> Vec<&str> {
    let mut names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn every_file_operation_end_to_end() {
    let h = Harness::start().await;
    let pool = &h.pool;
    pool.write_file(INSTANCE, "/configs/x", b"hello")
        .await
        .unwrap();
    assert_eq!(std::fs::read(h.on_disk("/configs/x")).unwrap(), b"hello");
    let mode = std::fs::metadata(h.on_disk("/configs/x"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(
        pool.read_file(INSTANCE, "/configs/x", LIMIT).await.unwrap(),
        b"hello"
    );

    pool.write_file(INSTANCE, "/configs/x", b"bye")
        .await
        .unwrap();
    assert_eq!(
        pool.read_file(INSTANCE, "/configs/x", LIMIT).await.unwrap(),
        b"bye"
    );
    pool.write_file(INSTANCE, "/configs/a/b/c.txt", b"deep")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(h.on_disk("/configs/a/b/c.txt")).unwrap(),
        b"deep"
    );

    // Pruned names, created on the instance's disk directly.
    for junk in [
        ".git/HEAD",
        "node_modules/m.js",
        "a/__pycache__/z.pyc",
        ".DS_Store",
    ] {
        let path = h.on_disk(&format!("/configs/{junk}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"junk").unwrap();
    }
    let top = pool.list_dir(INSTANCE, "/configs", 1).await.unwrap();
    assert_eq!(names(&top), ["a", "x"]);
    let x = top.iter().find(|e| e.path == "x").unwrap();
    assert_eq!((x.size, x.dir), (3, false));
    assert!(top.iter().find(|e| e.path == "a").unwrap().dir);
    let all = pool.list_dir(INSTANCE, "/configs", 5).await.unwrap();
    assert_eq!(names(&all), ["a", "a/b", "a/b/c.txt", "x"]);
    assert_eq!(
        names(&pool.list_dir(INSTANCE, "/configs", 2).await.unwrap()),
        ["a", "a/b", "x"]
    );
    assert!(
        pool.list_dir(INSTANCE, "/configs/none", 3)
            .await
            .unwrap()
            .is_empty()
    );

    pool.delete_file(INSTANCE, "/configs/x").await.unwrap();
    assert!(!h.on_disk("/configs/x").exists());
    pool.delete_file(INSTANCE, "/configs/x").await.unwrap();
    let missing = pool
        .read_file(INSTANCE, "/configs/x", LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(missing, EicError::NotFound), "{missing:?}");

    pool.write_file(INSTANCE, "/configs/big", &[7u8; 100])
        .await
        .unwrap();
    let too_large = pool
        .read_file(INSTANCE, "/configs/big", 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            too_large,
            EicError::TooLarge {
                size: 100,
                limit: 10
            }
        ),
        "{too_large:?}"
    );

    // All of it on one connection: one setup, one key, one tunnel.
    assert_eq!(pool.status().setups, 1);
    let sim = h.control.status().await.unwrap();
    assert_eq!((sim.keys_pushed, sim.tunnels_opened), (1, 1));
    h.assert_no_leaks().await;
}

/// A write of this size takes many SFTP round trips once each chunk is delayed.
const BIG: usize = 8 * 1024 * 1024;

/// Starts a big write of `doc` that the simulator slows down, and drops the tunnel once the
/// write's temporary sibling exists; `refuse` also refuses the retry's new tunnel.
async fn drop_mid_write(h: &Harness, refuse: bool) -> Result<(), EicError> {
    h.set_faults(FaultsPatch {
        chunk_latency_ms: Some(50),
        ..FaultsPatch::default()
    })
    .await;
    let pool = h.pool.clone();
    let write = tokio::spawn(async move {
        pool.write_file(INSTANCE, "/configs/doc", &vec![b'n'; BIG])
            .await
    });
    let configs = h.on_disk("/configs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&configs).unwrap().count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the write never created its temporary file"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.control.refuse_tunnels(refuse).await.unwrap();
    assert_eq!(h.control.drop_tunnels().await.unwrap(), 1);
    let result = write.await.unwrap();
    h.control.refuse_tunnels(false).await.unwrap();
    h.set_faults(FaultsPatch {
        chunk_latency_ms: Some(0),
        ..FaultsPatch::default()
    })
    .await;
    result
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_dropped_mid_write_leaves_the_old_content_and_the_next_call_recovers() {
    let h = Harness::start().await;
    h.pool
        .write_file(INSTANCE, "/configs/doc", b"old")
        .await
        .unwrap();

    // The retry cannot open a tunnel either: the write fails, the old content stays.
    let error = drop_mid_write(&h, true).await.unwrap_err();
    assert!(error.is_transport(), "{error:?}");
    assert_eq!(std::fs::read(h.on_disk("/configs/doc")).unwrap(), b"old");

    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/doc", LIMIT)
            .await
            .unwrap(),
        b"old"
    );
    h.pool
        .write_file(INSTANCE, "/configs/doc", b"new")
        .await
        .unwrap();
    assert_eq!(std::fs::read(h.on_disk("/configs/doc")).unwrap(), b"new");
    // The broken write's temporary file went with the next lease.
    assert_eq!(files_in(&h.on_disk("/configs")), ["doc"]);
    // The first connection, the retry's (refused its tunnel), the recovery's.
    assert_eq!(h.pool.status().setups, 3);
    h.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_dropped_mid_write_is_retried_whole_on_a_fresh_connection() {
    let h = Harness::start().await;
    h.pool
        .write_file(INSTANCE, "/configs/doc", b"old")
        .await
        .unwrap();
    drop_mid_write(&h, false).await.unwrap();
    let written = std::fs::read(h.on_disk("/configs/doc")).unwrap();
    assert!(written == vec![b'n'; BIG], "{} bytes", written.len());
    // The first attempt's temporary file was removed before the retry wrote its own.
    assert_eq!(files_in(&h.on_disk("/configs")), ["doc"]);
    assert_eq!(h.pool.status().setups, 2);
    h.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_dropped_mid_read_is_retried_once_and_the_next_call_recovers() {
    let h = Harness::start().await;
    std::fs::write(h.on_disk("/configs/big"), vec![b'r'; BIG]).unwrap();
    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/none", LIMIT)
            .await
            .unwrap_err()
            .step(),
        None
    );
    h.set_faults(FaultsPatch {
        chunk_latency_ms: Some(50),
        ..FaultsPatch::default()
    })
    .await;

    let pool = h.pool.clone();
    let read = tokio::spawn(async move { pool.read_file(INSTANCE, "/configs/big", LIMIT).await });
    // An 8 MiB read at 100 ms per round trip lasts seconds; drop it once it holds the connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.pool.status().leases == 0 {
        assert!(
            Instant::now() < deadline,
            "the read never leased the connection"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The retry on a fresh connection cannot open a tunnel either: the read fails.
    h.control.refuse_tunnels(true).await.unwrap();
    assert_eq!(h.control.drop_tunnels().await.unwrap(), 1);
    let error = read.await.unwrap().unwrap_err();
    assert_eq!(error.step(), Some(Step::Tunnel), "{error:?}");
    h.control.refuse_tunnels(false).await.unwrap();

    // Tunnels allowed: a drop in the middle of a read on a pooled connection is repaired by
    // the retry, unseen.
    assert!(
        h.pool
            .read_file(INSTANCE, "/configs/none", LIMIT)
            .await
            .is_err()
    );
    let pool = h.pool.clone();
    let read = tokio::spawn(async move { pool.read_file(INSTANCE, "/configs/big", LIMIT).await });
    while h.pool.status().leases == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.control.drop_tunnels().await.unwrap(), 1);
    assert_eq!(read.await.unwrap().unwrap().len(), BIG);

    h.set_faults(FaultsPatch {
        chunk_latency_ms: Some(0),
        ..FaultsPatch::default()
    })
    .await;
    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/big", LIMIT)
            .await
            .unwrap()
            .len(),
        BIG
    );
    h.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_key_keeps_the_connection_but_fails_a_new_setup_at_ssh_auth() {
    let h = Harness::start().await;
    h.pool
        .write_file(INSTANCE, "/configs/k", b"1")
        .await
        .unwrap();
    // Keys pushed from now on are already expired when sshd asks.
    h.set_faults(FaultsPatch {
        key_ttl_ms: Some(0),
        ..FaultsPatch::default()
    })
    .await;
    assert_eq!(h.control.expire_keys().await.unwrap(), 1);
    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/k", LIMIT)
            .await
            .unwrap(),
        b"1"
    );

    h.control.drop_tunnels().await.unwrap();
    // The dropped connection may fail one call before the pool builds a new one.
    let mut error = h
        .pool
        .read_file(INSTANCE, "/configs/k", LIMIT)
        .await
        .unwrap_err();
    if !matches!(error, EicError::Ssh { .. }) {
        assert!(error.is_transport(), "{error:?}");
        error = h
            .pool
            .read_file(INSTANCE, "/configs/k", LIMIT)
            .await
            .unwrap_err();
    }
    assert!(matches!(error, EicError::Ssh { .. }), "{error:?}");

    h.set_faults(FaultsPatch {
        key_ttl_ms: Some(60_000),
        ..FaultsPatch::default()
    })
    .await;
    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/k", LIMIT)
            .await
            .unwrap(),
        b"1"
    );
    h.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_refusing_tunnels_gives_a_tunnel_error_until_allowed_again() {
    let h = Harness::start().await;
    h.control.refuse_tunnels(true).await.unwrap();
    let error = h
        .pool
        .write_file(INSTANCE, "/configs/r", b"1")
        .await
        .unwrap_err();
    assert!(matches!(error, EicError::Tunnel { .. }), "{error:?}");
    assert!(!h.on_disk("/configs/r").exists());
    assert_eq!(h.control.status().await.unwrap().tunnels_rejected, 1);

    h.control.refuse_tunnels(false).await.unwrap();
    h.pool
        .write_file(INSTANCE, "/configs/r", b"1")
        .await
        .unwrap();
    // An established connection does not need a new tunnel.
    h.control.refuse_tunnels(true).await.unwrap();
    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/r", LIMIT)
            .await
            .unwrap(),
        b"1"
    );
    h.control.refuse_tunnels(false).await.unwrap();
    h.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_sshd_fails_operations_until_it_is_back() {
    let h = Harness::start().await;
    h.pool
        .write_file(INSTANCE, "/configs/s", b"1")
        .await
        .unwrap();
    h.control.stop_sshd(INSTANCE).await.unwrap();
    let error = h
        .pool
        .read_file(INSTANCE, "/configs/s", LIMIT)
        .await
        .unwrap_err();
    assert!(error.is_transport(), "{error:?}");
    let error = h
        .pool
        .read_file(INSTANCE, "/configs/s", LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(error, EicError::Tunnel { .. }), "{error:?}");

    h.control.start_sshd(INSTANCE).await.unwrap();
    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/s", LIMIT)
            .await
            .unwrap(),
        b"1"
    );
    h.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handshake_slower_than_the_step_timeout_times_out_at_the_tunnel() {
    let h = Harness::start().await;
    // step_timeout is 2 s (see `Harness::start`).
    h.set_faults(FaultsPatch {
        handshake_delay_ms: Some(4_000),
        ..FaultsPatch::default()
    })
    .await;
    let error = h
        .pool
        .read_file(INSTANCE, "/configs", LIMIT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, EicError::Timeout { step: Step::Tunnel }),
        "{error:?}"
    );

    h.set_faults(FaultsPatch {
        handshake_delay_ms: Some(0),
        ..FaultsPatch::default()
    })
    .await;
    h.pool
        .write_file(INSTANCE, "/configs/t", b"1")
        .await
        .unwrap();
    assert_eq!(
        h.pool
            .read_file(INSTANCE, "/configs/t", LIMIT)
            .await
            .unwrap(),
        b"1"
    );
    h.assert_no_leaks().await;
}
