//! EIC benchmarks against `eic-sim` and its real sshd, in one run:
//!
//! 1. warm 4 KiB read through `EicPool` vs the Go original's per-operation path (a new OpenSSH
//!    `sftp -b` client process — it spawns `ssh` — through a fresh tunnel per read);
//! 2. the pool's warm per-operation overhead over a bare SFTP read on an open session;
//! 3. a cold first read with profile `aws`, with the setup's step timeline;
//! 4. 100 concurrent reads of one instance from cold (profile `none`);
//! 5. throughput of N concurrent 4 KiB reads and writes on one warm connection, the operations
//!    cap (`EIC_MAX_OPS_PER_CONNECTION`) at N, for N in 1, 2, 4, 8, 16, 32 (both profiles);
//! 6. with profile `aws`: (1) again, the warm read against the physical floor of 2 round trips,
//!    and the cold read with discovery charged (two `Describe` calls, 100 ms each) and uncached.
//!
//! Differences are printed signed: nothing is clamped.
//!
//! Run: `cargo bench --workspace --bench eic` (as root, with openssh-server and openssh-client);
//! `EIC_BENCH_ONLY=cold` runs (3) alone, for A/B comparisons of the connection setup.
//! Each profile gets its own simulator; the pool reaches it through explicit AWS settings.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eic_pool::EicPool;
use eic_sim::{SimControl, SimInfo, SimProcess, TunnelListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::layer::SubscriberExt;

mod common;

use common::{INSTANCE, config, median, ms, push_key};

const FILE: &str = "/configs/bench-4k";
const LIMIT: u64 = 1 << 20;

fn main() {
    let layer = StepTimeline::default();
    let timeline = layer.spans.clone();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    let cold_only = std::env::var("EIC_BENCH_ONLY").is_ok_and(|only| only == "cold");
    let profiles: &[&str] = if cold_only {
        &["aws"]
    } else {
        &["none", "aws"]
    };
    for &profile in profiles {
        let sim = SimProcess::spawn(&["--instance", INSTANCE, "--profile", profile])
            .expect("eic-sim starts (root, openssh-server)");
        // A runtime per profile, dropped before its simulator stops.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_phase(profile, sim.info(), &timeline, cold_only));
    }
}

async fn run_phase(
    phase: &str,
    info: &SimInfo,
    timeline: &Arc<Mutex<Vec<SpanRecord>>>,
    cold_only: bool,
) {
    let root = info.instances[INSTANCE].root.clone();
    std::fs::write(root.join(FILE.trim_start_matches('/')), vec![b'x'; 4096]).unwrap();
    match phase {
        "none" => phase_none(info).await,
        "aws" => phase_aws(info, timeline, cold_only).await,
        other => panic!("unknown phase {other}"),
    }
}

async fn timed<T>(work: impl Future<Output = T>) -> (Duration, T) {
    let started = Instant::now();
    let out = work.await;
    (started.elapsed(), out)
}

// Over 60 lines: the profile-`none` measurements in the order docs/performance.md lists them.
async fn phase_none(info: &SimInfo) {
    // (1) and (2): warm reads through the pool.
    let pool = EicPool::new(config(info)).await.unwrap();
    pool.read_file(INSTANCE, FILE, LIMIT).await.unwrap();
    let mut pool_reads = Vec::new();
    for _ in 0..300 {
        let (elapsed, bytes) = timed(pool.read_file(INSTANCE, FILE, LIMIT)).await;
        assert_eq!(bytes.unwrap().len(), 4096);
        pool_reads.push(elapsed);
    }
    let pool_median = median(pool_reads);
    pool.close().await;

    // (2): the bare SFTP read (open + read + close) on an already-open session.
    let (bare_median, round_trip) = bare_sftp_reads(info, 300).await;

    // (1): the original's per-operation path.
    let process_median = ssh_process_reads(info, 20).await;

    println!("== profile none ==");
    println!(
        "(1) warm 4 KiB read: pool median {:.2} ms, new sftp/ssh process + new tunnel median {:.1} ms -> {:.0}x faster (goal >= 50x)",
        ms(pool_median),
        ms(process_median),
        process_median.as_secs_f64() / pool_median.as_secs_f64()
    );
    println!(
        "(2) pool read median {:.3} ms vs bare SFTP open+read on an open session {:.3} ms -> overhead {:.3} ms (goal <= 1 ms); one SFTP round trip (stat) {:.3} ms",
        ms(pool_median),
        ms(bare_median),
        ms(pool_median) - ms(bare_median),
        ms(round_trip)
    );

    // (4): 100 concurrent reads from cold, against a single cold read.
    let control = SimControl::new(&info.aws_endpoint_url);
    let mut colds = Vec::new();
    let mut bursts = Vec::new();
    for _ in 0..5 {
        let pool = EicPool::new(config(info)).await.unwrap();
        let (elapsed, bytes) = timed(pool.read_file(INSTANCE, FILE, LIMIT)).await;
        bytes.unwrap();
        colds.push(elapsed);
        pool.close().await;

        let pool = EicPool::new(config(info)).await.unwrap();
        let before = control.status().await.unwrap().tunnels_opened;
        let reads = (0..100).map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.read_file(INSTANCE, FILE, LIMIT).await })
        });
        let (elapsed, results) = timed(futures_util::future::join_all(reads)).await;
        for result in results {
            assert_eq!(result.unwrap().unwrap().len(), 4096);
        }
        let setups = pool.status().setups;
        let tunnels = control.status().await.unwrap().tunnels_opened - before;
        assert_eq!(
            (setups, tunnels),
            (1, 1),
            "100 concurrent cold reads share one setup"
        );
        bursts.push(elapsed);
        pool.close().await;
    }
    let (cold, burst) = (median(colds), median(bursts));
    println!(
        "(4) 100 concurrent cold reads: 1 setup, 1 tunnel; all done in {:.1} ms (median of 5) vs one cold read {:.1} ms -> {:+.1} ms (goal <= +300 ms)",
        ms(burst),
        ms(cold),
        ms(burst) - ms(cold)
    );
    ops_cap_sweep(info, "none").await;
}

/// (5): for each N, N callers each running 4 KiB reads (then writes, each caller its own file)
/// back to back for 3 s on one warm pooled connection whose operations cap is N: operations per
/// second in all. The SFTP requests of concurrent operations are pipelined on the connection's
/// one channel, so throughput grows with N until the connection, sshd or the CPU saturates.
async fn ops_cap_sweep(info: &SimInfo, profile: &str) {
    const SPAN: Duration = Duration::from_secs(3);
    println!(
        "(5) one warm connection, N concurrent 4 KiB operations, cap = N, {SPAN:?} each (profile {profile}):"
    );
    let payload = vec![b'y'; 4096];
    for cap in [1usize, 2, 4, 8, 16, 32] {
        let mut settings = config(info);
        settings.max_ops_per_connection = cap;
        let pool = EicPool::new(settings).await.unwrap();
        pool.read_file(INSTANCE, FILE, LIMIT).await.unwrap();
        let mut rates = Vec::new();
        for write in [false, true] {
            let deadline = Instant::now() + SPAN;
            let started = Instant::now();
            let callers = (0..cap).map(|caller| {
                let pool = pool.clone();
                let payload = payload.clone();
                tokio::spawn(async move {
                    let target = format!("/configs/bench-w-{caller}");
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        if write {
                            pool.write_file(INSTANCE, &target, &payload).await.unwrap();
                        } else {
                            let bytes = pool.read_file(INSTANCE, FILE, LIMIT).await.unwrap();
                            assert_eq!(bytes.len(), 4096);
                        }
                        done += 1;
                    }
                    done
                })
            });
            let counts = futures_util::future::join_all(callers).await;
            let total: u64 = counts.into_iter().map(|c| c.unwrap()).sum();
            #[allow(clippy::cast_precision_loss)]
            rates.push(total as f64 / started.elapsed().as_secs_f64());
        }
        assert_eq!(pool.status().setups, 1, "one connection throughout");
        println!(
            "    N = {cap:>2}: reads {:>8.0} ops/s, writes {:>8.0} ops/s",
            rates[0], rates[1]
        );
        pool.close().await;
    }
}

async fn phase_aws(info: &SimInfo, timeline: &Arc<Mutex<Vec<SpanRecord>>>, cold_only: bool) {
    let mut colds = Vec::new();
    let mut first_timeline = None;
    for _ in 0..5 {
        timeline.lock().unwrap().clear();
        let pool = EicPool::new(config(info)).await.unwrap();
        let (elapsed, bytes) = timed(pool.read_file(INSTANCE, FILE, LIMIT)).await;
        assert_eq!(bytes.unwrap().len(), 4096);
        colds.push(elapsed);
        pool.close().await;
        first_timeline.get_or_insert_with(|| timeline.lock().unwrap().clone());
    }
    println!(
        "== profile aws (key push 300 ms, handshake 1 s, 10 ms per chunk each way, each Describe call 100 ms) =="
    );
    println!(
        "(3) cold first read, discovery charged and uncached (a new pool each run): median {:.0} ms of 5 (goal <= 1350 ms); runs: {:?} ms",
        ms(median(colds.clone())),
        colds.iter().map(|d| ms(*d).round()).collect::<Vec<_>>()
    );
    println!("    setup steps of the first run (start..end, ms after the setup began):");
    let records = first_timeline.unwrap_or_default();
    let origin = records.iter().map(|r| r.start).min();
    if let Some(origin) = origin {
        for record in records {
            println!(
                "      {:<28} {:>6.0} .. {:>6.0}",
                record.label,
                ms(record.start - origin),
                ms(record.end - origin)
            );
        }
    }
    if !cold_only {
        warm_reads_aws(info).await;
        ops_cap_sweep(info, "aws").await;
    }
}

/// (6): the warm-read comparison of (1) under profile `aws`, and the warm read against the
/// physical floor: one round trip for the SFTP open, one for the read (the close is not awaited).
async fn warm_reads_aws(info: &SimInfo) {
    let pool = EicPool::new(config(info)).await.unwrap();
    pool.read_file(INSTANCE, FILE, LIMIT).await.unwrap();
    let mut reads = Vec::new();
    for _ in 0..50 {
        let (elapsed, bytes) = timed(pool.read_file(INSTANCE, FILE, LIMIT)).await;
        assert_eq!(bytes.unwrap().len(), 4096);
        reads.push(elapsed);
    }
    let pool_median = median(reads);
    pool.close().await;
    let (bare_median, round_trip) = bare_sftp_reads(info, 50).await;
    let process_median = ssh_process_reads(info, 5).await;
    println!(
        "(6) warm 4 KiB read: pool median {:.1} ms of 50, new sftp/ssh process + new tunnel median {:.0} ms of 5 -> {:.0}x faster",
        ms(pool_median),
        ms(process_median),
        process_median.as_secs_f64() / pool_median.as_secs_f64()
    );
    println!(
        "    one SFTP round trip (stat) {:.1} ms; bare open+read on an open session {:.1} ms; pool read = {:.2} round trips, {:+.1} ms over 2 round trips (goal <= 2 round trips + 2 ms)",
        ms(round_trip),
        ms(bare_median),
        pool_median.as_secs_f64() / round_trip.as_secs_f64(),
        ms(pool_median) - 2.0 * ms(round_trip)
    );
}

/// Medians of a bare open + read on an open SFTP session, and of one SFTP round trip (stat).
async fn bare_sftp_reads(info: &SimInfo, count: usize) -> (Duration, Duration) {
    let bare = common::bare_sftp(info).await;
    let sftp = &bare.sftp;
    // The requests the pool needs at least: open, then one read (it closes without waiting).
    let mut samples = Vec::new();
    for _ in 0..count {
        let (elapsed, mut file) = timed(async {
            let mut file = sftp.open(FILE).await.unwrap();
            let mut buf = vec![0u8; 4096];
            file.read_exact(&mut buf).await.unwrap();
            file
        })
        .await;
        samples.push(elapsed);
        file.shutdown().await.unwrap();
    }
    (
        median(samples),
        common::sftp_round_trip(sftp, FILE, count).await,
    )
}

/// One `sftp -b` process (it spawns `ssh`) per read, each through a new presigned WebSocket, as
/// the Go original paid for every operation (its pooled `ssh … sudo cat`; sshd here forces the
/// SFTP server, so `sftp -b` with `get` is the equivalent read).
async fn ssh_process_reads(info: &SimInfo, count: usize) -> Duration {
    let key = push_key(info).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("id_ed25519");
    std::fs::write(
        &key_file,
        key.to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let batch = dir.path().join("batch");
    let local = dir.path().join("out");
    std::fs::write(&batch, format!("get {FILE} {}\n", local.display())).unwrap();
    let listener = TunnelListener::bind(info, INSTANCE).await.unwrap();
    let port = listener.local_addr().port().to_string();
    let mut samples = Vec::new();
    for _ in 0..count {
        let _ = std::fs::remove_file(&local);
        let mut command = tokio::process::Command::new("sftp");
        command
            .args(["-q", "-b"])
            .arg(&batch)
            .arg("-i")
            .arg(&key_file)
            .args(["-P", &port])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "LogLevel=ERROR", "-o", "BatchMode=yes"])
            .arg(format!("{}@127.0.0.1", info.os_user))
            .stdout(std::process::Stdio::null());
        let (elapsed, status) = timed(command.status()).await;
        assert!(status.unwrap().success(), "sftp failed");
        assert_eq!(std::fs::read(&local).unwrap().len(), 4096);
        samples.push(elapsed);
    }
    median(samples)
}

/// Start and end of every `eic.setup` / `eic.step` span of the pool.
#[derive(Debug, Clone)]
struct SpanRecord {
    label: String,
    start: Instant,
    end: Instant,
}

#[derive(Default)]
struct StepTimeline {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

struct Open {
    label: String,
    start: Instant,
}

#[derive(Default)]
struct StepField(Option<String>);

impl tracing::field::Visit for StepField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "step" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "step" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for StepTimeline
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let name = attrs.metadata().name();
        if !matches!(name, "eic.setup" | "eic.step" | "eic.operation") {
            return;
        }
        let mut step = StepField::default();
        attrs.record(&mut step);
        let label = match step.0 {
            Some(step) => format!("{name} {step}"),
            None => name.to_owned(),
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Open {
                label,
                start: Instant::now(),
            });
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(open) = span.extensions_mut().remove::<Open>()
        {
            self.spans.lock().unwrap().push(SpanRecord {
                label: open.label,
                start: open.start,
                end: Instant::now(),
            });
        }
    }
}
