//! The web terminal's shell path against `eic-sim --profile aws` (10 ms per chunk each way, so
//! one round trip is about 20 ms; key push 300 ms, tunnel handshake 1 s), side by side in one run:
//!
//! 1. keystroke to echo on an open shell (`EicPool::open_shell`), p50 of 200 keystrokes, against
//!    one round trip measured in the same run (an SFTP `stat` on a bare session: the tunnel, sshd
//!    and a process on the instance, as a keystroke's echo crosses them);
//! 2. warm open (the pooled connection exists) until the shell's first output;
//! 3. cold open (a new pool: the whole setup, then the shell);
//! 4. the original's path for a session: key push, a new `ssh -tt` process through a fresh
//!    tunnel, until the remote shell answers a first command;
//! 5. `cat` of a 10 MiB file through the terminal vs the same bytes read over SFTP on the same
//!    connection.
//!
//! Run: `scripts/bench-terminal` (as root, with openssh-server and openssh-client).

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use eic_pool::{EicPool, Shell, ShellEvent, ShellSize};
use eic_sim::{SimInfo, SimProcess, TunnelListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{INSTANCE, config, median, ms, push_key};

const BIG: &str = "/configs/bench-10m";
const BIG_BYTES: usize = 10 << 20;
const SMALL: &str = "/configs/bench-small";

fn main() {
    let sim = SimProcess::spawn(&["--instance", INSTANCE, "--profile", "aws"])
        .expect("eic-sim starts (root, openssh-server)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(sim.info()));
}

/// Reads shell output until `marker` has been seen; returns the bytes read.
async fn until(shell: &mut Shell, marker: &[u8]) -> usize {
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0;
    loop {
        match shell.next_event().await {
            ShellEvent::Output(bytes) => {
                total += bytes.len();
                tail.extend_from_slice(&bytes);
                if tail.windows(marker.len()).any(|w| w == marker) {
                    return total;
                }
                let keep = tail.len().saturating_sub(marker.len());
                tail.drain(..keep);
            }
            other => panic!("the shell ended: {other:?}"),
        }
    }
}

/// Opens a shell and waits for its first output (the prompt).
async fn open(pool: &EicPool) -> (Duration, Shell) {
    let started = Instant::now();
    let mut shell = pool
        .open_shell(INSTANCE, ShellSize::default())
        .await
        .unwrap();
    until(&mut shell, b"$ ").await;
    (started.elapsed(), shell)
}

async fn run(info: &SimInfo) {
    let root = info.instances[INSTANCE].root.clone();
    let big = root.join(BIG.trim_start_matches('/'));
    std::fs::write(big, vec![b'x'; BIG_BYTES]).unwrap();
    std::fs::write(root.join(SMALL.trim_start_matches('/')), b"small").unwrap();
    println!("== profile aws: one round trip ~20 ms (10 ms per chunk each way) ==");

    let cold = median(cold_opens(info, 3).await);
    let cold_read = median(cold_reads(info, 3).await);
    let pool = EicPool::new(config(info)).await.unwrap();
    pool.read_file(INSTANCE, BIG, 1 << 30).await.unwrap();
    let warm = median(warm_opens(&pool, 10).await);
    let (_, mut shell) = open(&pool).await;
    let echo = median(keystrokes(&mut shell, 200).await);
    let (cat, sftp) = cat_vs_sftp(&pool, &mut shell, 3).await;
    shell.close().await;
    pool.close().await;
    let original = median(original_sessions(info, 5).await);
    let bare = common::bare_sftp(info).await;
    let round_trip = common::sftp_round_trip(&bare.sftp, BIG, 200).await;

    println!(
        "(1) keystroke to echo on an open shell: p50 {:.1} ms of 200; one round trip (SFTP stat, \
         bare session) p50 {:.1} ms of 200 -> {:+.1} ms over 1 round trip (goal <= 2 ms)",
        ms(echo),
        ms(round_trip),
        ms(echo) - ms(round_trip)
    );
    println!(
        "(2) warm open, until the prompt: median {:.1} ms of 10 = {:.2} round trips, {:+.1} ms over \
         3 (goal <= 3 round trips + 5 ms)",
        ms(warm),
        warm.as_secs_f64() / round_trip.as_secs_f64(),
        ms(warm) - 3.0 * ms(round_trip)
    );
    // A cold read is the setup, then the open and the read (2 round trips).
    let setup = cold_read.as_secs_f64() - 2.0 * round_trip.as_secs_f64();
    println!(
        "(3) cold open (setup + shell), until the prompt: median {:.0} ms of 3; the setup alone \
         (cold small read, median of 3, minus 2 round trips) {:.0} ms -> the shell adds {:.2} \
         round trips (goal <= 3)",
        ms(cold),
        setup * 1000.0,
        (cold.as_secs_f64() - setup) / round_trip.as_secs_f64()
    );
    println!(
        "(4) original path (key push + new ssh -tt process + fresh tunnel), until a first command answers: median {:.0} ms of 5 -> warm open {:.0}x faster, cold open {:.1}x faster",
        ms(original),
        original.as_secs_f64() / warm.as_secs_f64(),
        original.as_secs_f64() / cold.as_secs_f64()
    );
    println!(
        "(5) 10 MiB: cat through the terminal median {:.0} ms ({:.1} MiB/s), SFTP read on the same connection {:.0} ms ({:.1} MiB/s) -> terminal at {:.0}% of SFTP",
        ms(cat),
        10.0 / cat.as_secs_f64(),
        ms(sftp),
        10.0 / sftp.as_secs_f64(),
        100.0 * sftp.as_secs_f64() / cat.as_secs_f64()
    );
}

/// A new pool each time: the whole setup, then the shell.
async fn cold_opens(info: &SimInfo, count: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..count {
        let pool = EicPool::new(config(info)).await.unwrap();
        let (elapsed, shell) = open(&pool).await;
        samples.push(elapsed);
        shell.close().await;
        pool.close().await;
    }
    samples
}

/// A new pool each time: the whole setup, then a small read.
async fn cold_reads(info: &SimInfo, count: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..count {
        let pool = EicPool::new(config(info)).await.unwrap();
        let started = Instant::now();
        pool.read_file(INSTANCE, SMALL, 1 << 20).await.unwrap();
        samples.push(started.elapsed());
        pool.close().await;
    }
    samples
}

async fn warm_opens(pool: &EicPool, count: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for _ in 0..count {
        let (elapsed, shell) = open(pool).await;
        samples.push(elapsed);
        shell.close().await;
    }
    samples
}

/// One key at a time, each until the PTY echoes it back.
async fn keystrokes(shell: &mut Shell, count: u32) -> Vec<Duration> {
    let mut samples = Vec::new();
    for n in 0..count {
        let key = [b'a' + (n % 26) as u8];
        let started = Instant::now();
        shell.write(&key).await.unwrap();
        until(shell, &key).await;
        samples.push(started.elapsed());
    }
    shell.write(b"\x15").await.unwrap(); // ^U: drop the typed line
    samples
}

/// Medians of `cat` of the big file through the shell and of its SFTP read, interleaved.
async fn cat_vs_sftp(pool: &EicPool, shell: &mut Shell, count: usize) -> (Duration, Duration) {
    let (mut cats, mut sftps) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let started = Instant::now();
        let command = format!("cat {BIG}; echo END-$((20+22))\n");
        shell.write(command.as_bytes()).await.unwrap();
        let bytes = until(shell, b"END-42").await;
        assert!(
            bytes >= BIG_BYTES,
            "the whole file came through ({bytes} bytes)"
        );
        cats.push(started.elapsed());
        let started = Instant::now();
        let read = pool.read_file(INSTANCE, BIG, 1 << 30).await.unwrap();
        assert_eq!(read.len(), BIG_BYTES);
        sftps.push(started.elapsed());
    }
    (median(cats), median(sftps))
}

/// The original's per-session path: push a key, start `ssh -tt` through a fresh tunnel, and
/// wait until the remote shell answers a first command.
async fn original_sessions(info: &SimInfo, count: usize) -> Vec<Duration> {
    let listener = TunnelListener::bind(info, INSTANCE).await.unwrap();
    let port = listener.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut samples = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        let key_file = dir.path().join("id_ed25519");
        let key = push_key(info).await;
        let text = key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap();
        std::fs::write(&key_file, text).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut child = tokio::process::Command::new("ssh")
            .arg("-tt")
            .arg("-i")
            .arg(&key_file)
            .args(["-p", &port, "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .arg(format!("{}@127.0.0.1", info.os_user))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        stdin.write_all(b"echo MARK-$((1+1))\n").await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(6).any(|w| w == b"MARK-2") {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "ssh ended: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        samples.push(started.elapsed());
        let _ = child.kill().await;
    }
    samples
}
