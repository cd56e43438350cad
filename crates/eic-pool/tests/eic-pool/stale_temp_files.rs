//! Temporary files that a write broken off mid-way left behind are removed by the next
//! connection's first successful write to the same directory, and nothing else is.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::support::INSTANCE;
use eic_pool::EicPool;

fn create(path: &Path, age: Duration) {
    let file = std::fs::File::create(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_connection_sweeps_stale_temporary_files_and_only_those() {
    let sim = support::sim();
    let configs = sim.instance(INSTANCE).root.join("configs");
    let first = EicPool::new(support::config(sim.info())).await.unwrap();
    first
        .write_file(INSTANCE, "/configs/doc", b"v1")
        .await
        .unwrap();
    first.close().await;

    let old = Duration::from_secs(300);
    let stale = [".doc.tmp-0123456789abcdef", ".other.tmp-00000000000000ff"];
    for name in stale {
        create(&configs.join(name), old);
    }
    let kept = [
        ".doc.tmp-fedcba9876543210", // recent: a write may be under way
        ".doc.tmp-0123456789ABCDEF",
        "doc.tmp-0123456789abcdef",
        ".doc.tmp-0123",
        ".doc.tmp-0123456789abcdef.bak",
    ];
    create(&configs.join(kept[0]), Duration::ZERO);
    for name in &kept[1..] {
        create(&configs.join(name), old);
    }
    let directory = configs.join(".dir.tmp-0123456789abcdef");
    std::fs::create_dir(&directory).unwrap();

    let second = EicPool::new(support::config(sim.info())).await.unwrap();
    second
        .write_file(INSTANCE, "/configs/doc", b"v2")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stale.iter().any(|name| configs.join(name).exists()) {
        assert!(
            Instant::now() < deadline,
            "stale temporary files were not removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for name in kept {
        assert!(configs.join(name).exists(), "{name} was removed");
    }
    assert!(directory.is_dir());
    assert_eq!(std::fs::read(configs.join("doc")).unwrap(), b"v2");
    second.close().await;
}
