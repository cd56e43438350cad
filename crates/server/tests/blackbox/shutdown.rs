//! Shutdown and crash with writes in flight, on the built-in PostgreSQL: nothing the server
//! acknowledged is lost, and the next start reuses (after SIGTERM) or recovers (after SIGKILL of
//! the server and of PostgreSQL, stale `postmaster.pid` included) the same cluster.
//!
//! The foundation tests cover the built-in cluster's lifecycle without load; these add the
//! writes. 50 clients write in a loop (25 file PUTs on the local backend, 25 metadata PATCHes),
//! each remembering its last acknowledged value; after the restart every key must show that
//! value or the one of the request that was cut off (which the server may have completed
//! without the client hearing back), never an older one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::TestServer;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::json;

/// Concurrent writers of each kind.
const WRITERS: usize = 25;
/// How long the writers run before the signal.
const LOAD_BEFORE_SIGNAL: Duration = Duration::from_millis(1500);

/// A data dir and a workspaces dir that outlive one server, enterable by `postgres`.
struct Dirs {
    _root: tempfile::TempDir,
    data: PathBuf,
    workspaces: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::Builder::new()
            .prefix("wss-shutdown-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (data, workspaces) = (root.path().join("data"), root.path().join("workspaces"));
        std::fs::create_dir_all(&workspaces).unwrap();
        Dirs {
            _root: root,
            data,
            workspaces,
        }
    }

    async fn start(&self) -> TestServer {
        TestServer::builder()
            .built_in_postgres()
            .data_dir(&self.data)
            .env("WORKSPACES_DIR", &self.workspaces.display().to_string())
            .env("MOLECULE_ENV", "development")
            .env("RATE_LIMIT", "1000000")
            .start()
            .await
    }

    fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postgres/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

/// What one writer wrote: the key, its last acknowledged sequence number, and the sequence
/// number of the request that got no 2xx (cut off by the signal), if any.
#[derive(Debug, Clone)]
struct Writer {
    target: Target,
    acknowledged: u32,
    cut_off: Option<u32>,
    /// A non-2xx answer (status and body), which must be an error the server chose to send.
    refused: Option<(StatusCode, String)>,
}

#[derive(Debug, Clone)]
enum Target {
    /// `configs/load/f{n}.txt` of the shared workspace, content `seq:{n}`.
    File { workspace: String, index: usize },
    /// A workspace of its own, renamed `w{index}-{seq}`.
    Workspace { id: String, index: usize },
}

impl Target {
    fn request(&self, client: &reqwest::Client, base: &str, seq: u32) -> reqwest::RequestBuilder {
        match self {
            Target::File { workspace, index } => client
                .put(format!(
                    "{base}/workspaces/{workspace}/files/load/f{index}.txt"
                ))
                .json(&json!({ "content": format!("seq:{seq}") })),
            Target::Workspace { id, index } => client
                .patch(format!("{base}/workspaces/{id}"))
                .json(&json!({ "name": format!("w{index}-{seq}") })),
        }
    }

    /// The sequence number visible now (0: never written).
    async fn visible(&self, server: &TestServer) -> u32 {
        match self {
            Target::File { workspace, index } => {
                let (status, body) = server
                    .get(&format!("/workspaces/{workspace}/files/load/f{index}.txt"))
                    .await;
                if status == StatusCode::NOT_FOUND {
                    return 0;
                }
                assert_eq!(status, StatusCode::OK, "{body}");
                let content = body["content"].as_str().unwrap_or_default();
                content
                    .strip_prefix("seq:")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{content:?}"))
            }
            Target::Workspace { id, index } => {
                let (status, body) = server.get(&format!("/workspaces/{id}")).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let name = body["name"].as_str().unwrap_or_default();
                match name.strip_prefix(&format!("w{index}-")) {
                    Some(seq) => seq.parse().unwrap(),
                    None => 0,
                }
            }
        }
    }
}

/// Creates the shared workspace for the files and one workspace per metadata writer.
async fn targets(server: &TestServer) -> Vec<Target> {
    let create = |name: String| async move {
        let (status, body) = server
            .post("/workspaces", &json!({ "name": name, "tier": 1 }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    };
    let shared = create("files".into()).await;
    let mut targets: Vec<Target> = (0..WRITERS)
        .map(|index| Target::File {
            workspace: shared.clone(),
            index,
        })
        .collect();
    for index in 0..WRITERS {
        targets.push(Target::Workspace {
            id: create(format!("initial-{index}")).await,
            index,
        });
    }
    targets
}

/// Starts one looping writer per target; each stops at its first answer that is not a 2xx.
fn start_writers(server: &TestServer, targets: &[Target]) -> Vec<tokio::task::JoinHandle<Writer>> {
    // Bounded well above the server's shutdown grace: a request never hangs the test.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    targets
        .iter()
        .map(|target| {
            let (client, base, target) = (client.clone(), server.base_url.clone(), target.clone());
            tokio::spawn(async move {
                let mut writer = Writer {
                    target,
                    acknowledged: 0,
                    cut_off: None,
                    refused: None,
                };
                for seq in 1.. {
                    match writer.target.request(&client, &base, seq).send().await {
                        Ok(response) if response.status().is_success() => writer.acknowledged = seq,
                        Ok(response) => {
                            let status = response.status();
                            let body = response.text().await.unwrap_or_default();
                            writer.refused = Some((status, body));
                            writer.cut_off = Some(seq);
                            break;
                        }
                        Err(_) => {
                            writer.cut_off = Some(seq);
                            break;
                        }
                    }
                }
                writer
            })
        })
        .collect()
}

async fn finish(writers: Vec<tokio::task::JoinHandle<Writer>>) -> Vec<Writer> {
    let mut finished = Vec::new();
    for writer in writers {
        finished.push(writer.await.expect("a writer task"));
    }
    finished
}

/// Every key shows its last acknowledged value or the cut-off one; refusals are 503s.
async fn assert_nothing_lost(server: &TestServer, writers: &[Writer]) {
    let acknowledged: u32 = writers.iter().map(|w| w.acknowledged).sum();
    assert!(
        acknowledged >= writers.len() as u32,
        "the load barely ran: {acknowledged} writes acknowledged"
    );
    let mut cut_off_completed = 0;
    for writer in writers {
        let visible = writer.target.visible(server).await;
        let allowed = writer
            .cut_off
            .map_or(writer.acknowledged, |cut| cut.max(writer.acknowledged));
        assert!(
            visible == writer.acknowledged || visible == allowed,
            "{:?}: acknowledged {} and cut off at {:?}, but {visible} is visible",
            writer.target,
            writer.acknowledged,
            writer.cut_off
        );
        if visible != writer.acknowledged {
            cut_off_completed += 1;
        }
        if let Some((status, body)) = &writer.refused {
            assert_eq!(
                *status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{:?}: {body}",
                writer.target
            );
        }
    }
    eprintln!(
        "{} writers, {acknowledged} writes acknowledged; {cut_off_completed} cut-off writes completed \
         anyway; {} refused with an error",
        writers.len(),
        writers.iter().filter(|w| w.refused.is_some()).count()
    );
}

/// Names in the files' folder other than the files themselves (temporary siblings).
fn temporaries(workspaces: &Path, writers: &[Writer]) -> Vec<String> {
    let Some(Target::File { workspace, .. }) = writers.iter().map(|w| &w.target).next() else {
        return Vec::new();
    };
    let dir = workspaces.join(workspace).join("configs/load");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !(name.starts_with('f') && name.ends_with(".txt")))
        .collect()
}

fn is_alive(pid: i32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie counts as dead (PID 1 in a container may never reap it).
        return stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            != Some("Z");
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_writes_in_flight_loses_no_acknowledged_write_and_the_cluster_is_reused() {
    let dirs = Dirs::new();
    let mut server = dirs.start().await;
    let targets = targets(&server).await;
    let postmaster = dirs.postmaster_pid().expect("the built-in PostgreSQL runs");

    let writers = start_writers(&server, &targets);
    tokio::time::sleep(LOAD_BEFORE_SIGNAL).await;
    // Blocks this worker until the server exited; the writers run on the other one.
    let status = tokio::task::block_in_place(|| server.terminate()).expect("it was running");
    let writers = finish(writers).await;
    let logs = server.logs();
    assert!(status.success(), "exit {status}: {logs}");
    assert!(
        !logs.contains("cut off"),
        "requests were cut off at the shutdown timeout: {logs}"
    );
    assert!(
        !is_alive(postmaster),
        "PostgreSQL {postmaster} still runs after the server stopped"
    );
    assert_eq!(
        dirs.postmaster_pid(),
        None,
        "PostgreSQL did not stop cleanly (postmaster.pid left)"
    );
    assert!(
        writers.iter().all(|w| w.cut_off.is_some()),
        "every writer was stopped by the shutdown"
    );

    let restarted = dirs.start().await;
    let logs = restarted.logs();
    assert!(
        !logs.contains("initialising"),
        "the cluster was initialised again: {logs}"
    );
    assert!(
        !logs.contains("stale"),
        "a clean stop left stale files: {logs}"
    );
    assert_nothing_lost(&restarted, &writers).await;
    let temporaries = temporaries(&dirs.workspaces, &writers);
    assert!(
        temporaries.is_empty(),
        "a graceful stop left temporary files: {temporaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_of_server_and_postgres_with_writes_in_flight_recovers_every_acknowledged_write() {
    let dirs = Dirs::new();
    let mut server = dirs.start().await;
    let targets = targets(&server).await;
    let postmaster = dirs.postmaster_pid().expect("the built-in PostgreSQL runs");

    let writers = start_writers(&server, &targets);
    tokio::time::sleep(LOAD_BEFORE_SIGNAL).await;
    // The machine "crashes": SIGKILL to the server, then to PostgreSQL (no cleanup at all).
    server.kill();
    kill(Pid::from_raw(postmaster), Signal::SIGKILL).unwrap();
    let writers = finish(writers).await;
    while is_alive(postmaster) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        dirs.postmaster_pid(),
        Some(postmaster),
        "the stale postmaster.pid stays behind"
    );

    // The next start recovers the same cluster (crash recovery replays the WAL).
    let restarted = dirs.start().await;
    let logs = restarted.logs();
    assert!(
        !logs.contains("initialising"),
        "the cluster was initialised again: {logs}"
    );
    let (status, body) = restarted.get("/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_nothing_lost(&restarted, &writers).await;
    // Every file parsed as a whole value above (none half written). A write cut off by the
    // crash may leave its hidden temporary sibling behind (the process died between create and
    // rename); it is never served as the file. Counted for the report.
    let temporaries = temporaries(&dirs.workspaces, &writers);
    eprintln!("temporary files left by the crash: {temporaries:?}");
}
