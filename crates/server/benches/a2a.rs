//! The A2A proxy under load (release build, `scripts/bench-a2a`), side by side in one run:
//!
//! 1. Overhead: 64 concurrent connections sending `message/send` for `BENCH_SECONDS` (default 10)
//!    to an agent that answers at once, first directly, then through `POST /workspaces/{id}/a2a`.
//!    Prints requests/s, p50 and p99 of each, and the p50 difference and throughput ratio. Between
//!    them, a bare HTTP hop in this process (the body forwarded, the answer handed back, nothing
//!    else) shows what any proxy on the same 2 cores pays before doing its own work; the same hop
//!    run again as a process of its own (this bench re-executed, its own runtime, as the server
//!    is) adds what crossing into another process costs. Also the CPU time per call of that hop
//!    process and of the server (`/proc/{pid}/stat`), which a noisy machine disturbs far less
//!    than throughput.
//! 2. The same comparison with the real agent of the tests (`tests/agents/echo_agent.py`, the
//!    official `a2a-sdk` on uvicorn), three interleaved rounds at the same connections with their
//!    medians, then one connection; with the agent's and the server's CPU time per call.
//! 3. 1,000 concurrent conversations with an agent that answers after 2 s: completed, errors, wall
//!    time, and the server's peak RSS (VmRSS sampled every 50 ms).
//!
//! The agent of 1 and 3 is an axum server in this process on loopback, whose own cost is
//! negligible; the server runs in dev mode (loopback agents allowed) with the rate limit lifted
//! (one client IP). `BENCH_BINARY` runs another build of the server (an earlier commit's release
//! binary) for an A/B.

#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::TestServer;
use serde_json::{Value, json};

/// Concurrent connections of the overhead runs; `BENCH_CONNECTIONS` overrides it.
const CONNECTIONS: usize = 64;
const CONVERSATIONS: usize = 1000;
const SLOW_ANSWER: Duration = Duration::from_secs(2);

/// Set in the environment of this bench re-executed as a bare hop process: the agent's URL.
const HOP_TARGET_ENV: &str = "A2A_BENCH_HOP_TARGET";

#[tokio::main]
async fn main() {
    match std::env::var(HOP_TARGET_ENV) {
        Ok(target) => serve_hop(&target).await,
        Err(_) => run().await,
    }
}

/// The bare hop as a process of its own: prints its URL, serves until its parent closes stdin.
async fn serve_hop(target: &str) {
    use std::io::Read;
    println!("{}", harness::agent::start_forwarder(target).await);
    let parent_gone = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()));
    let _ = parent_gone.await;
}

/// This bench re-executed as a bare hop to `target`; killed when dropped.
async fn start_hop_process(target: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("this bench"))
        .env(HOP_TARGET_ENV, target)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the hop process");
    let stdout = child.stdout.take().expect("its stdout");
    let mut url = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut url)
        .await
        .expect("its URL");
    let url = url.trim().to_string();
    assert!(
        !url.is_empty(),
        "the hop process ended before printing its URL"
    );
    (child, url)
}

async fn run() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let connections: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CONNECTIONS);
    let fast = harness::agent::start(Duration::ZERO).await;
    let slow = harness::agent::start(SLOW_ANSWER).await;
    let mut server = TestServer::builder()
        .env("MOLECULE_ENV", "development")
        .env("RATE_LIMIT", "1000000000")
        .env("RUST_LOG", "warn");
    // Another build (an earlier commit's release binary) for an A/B.
    if let Some(binary) = std::env::var_os("BENCH_BINARY") {
        server = server.binary(std::path::Path::new(&binary));
    }
    let server = server.start().await;
    let fast_id = harness::agent::registered_workspace(&server, "fast", &fast).await;
    let slow_id = harness::agent::registered_workspace(&server, "slow", &slow).await;

    let length = Duration::from_secs(seconds);
    let forwarder = harness::agent::start_forwarder(&fast).await;
    let direct = load(&format!("{fast}/"), connections, length).await;
    let forwarded = load(&format!("{forwarder}/"), connections, length).await;
    let (hop, hop_url) = start_hop_process(&fast).await;
    let hop_pid = hop.id().expect("running");
    let (hopped, [hop_cpu]) =
        load_measuring([hop_pid], &format!("{hop_url}/"), connections, length).await;
    drop(hop);
    let proxy_url = server.url(&format!("/workspaces/{fast_id}/a2a"));
    let server_pid = server.pid().expect("running");
    let (proxied, [cpu_used]) = load_measuring([server_pid], &proxy_url, connections, length).await;
    println!("overhead, {connections} connections, {seconds} s each, agent answers at once:");
    direct.print("direct to the agent");
    forwarded.print("through a bare hop");
    hopped.print("bare hop, own process");
    proxied.print("through the proxy");
    print_comparison(&direct, &proxied);
    println!(
        "  the bare hop (this process, forwarding only): p50 overhead {:.2} ms, {:.0}% of direct; the proxy does {:.0}% of its throughput",
        forwarded.p50_over_ms(&direct),
        forwarded.percent_of(&direct),
        proxied.percent_of(&forwarded)
    );
    println!(
        "  the bare hop in a process of its own: p50 overhead {:.2} ms, {:.0}% of direct, {:.0} us of its CPU time per call; the proxy does {:.0}% of its throughput",
        hopped.p50_over_ms(&direct),
        hopped.percent_of(&direct),
        cpu_per_call_us(hop_cpu, &hopped),
        proxied.percent_of(&hopped)
    );
    println!(
        "  the server's CPU time per proxied call (user + system, its background writer included): {:.0} us",
        cpu_per_call_us(cpu_used, &proxied)
    );
    real_agent(&server, connections, length).await;
    conversations(&server, &slow_id).await;
}

/// Rounds of the real agent's comparison, direct and proxied interleaved.
const REAL_AGENT_ROUNDS: usize = 3;

/// The same comparison with the agent the tests use (`a2a-sdk` on uvicorn, one Python process):
/// what the proxy costs beside an agent that does some work of its own per message. That agent
/// saturates one core, so at `connections` its latency is queueing: the rounds interleave direct
/// and proxied runs and the medians are reported. One connection then shows the latency a call
/// gains when nothing queues.
async fn real_agent(server: &TestServer, connections: usize, length: Duration) {
    let (_, created) = server.post("/workspaces", &json!({"name": "sdk"})).await;
    let id = created["id"].as_str().expect("a workspace");
    let agent = harness::sdk_agent::Agent::start(server, id, "push").await;
    let proxy_url = server.url(&format!("/workspaces/{id}/a2a"));
    let (agent_pid, server_pid) = (
        agent.pid().expect("running"),
        server.pid().expect("running"),
    );
    println!(
        "the real agent (tests/agents/echo_agent.py: a2a-sdk, one uvicorn process), {connections} connections, {REAL_AGENT_ROUNDS} rounds:"
    );
    let (mut ratios, mut overheads) = (Vec::new(), Vec::new());
    for round in 1..=REAL_AGENT_ROUNDS {
        let (direct, [agent_direct]) =
            load_measuring([agent_pid], &agent.url, connections, length).await;
        let (proxied, [server_used, agent_proxied]) =
            load_measuring([server_pid, agent_pid], &proxy_url, connections, length).await;
        direct.print(&format!("{round}: direct"));
        proxied.print(&format!("{round}: through the proxy"));
        let (ratio, overhead) = (proxied.percent_of(&direct), proxied.p50_over_ms(&direct));
        println!(
            "     {ratio:.0}% of direct, p50 overhead {overhead:.2} ms; CPU time per call: the agent {:.0} us direct and {:.0} us proxied, the server {:.0} us",
            cpu_per_call_us(agent_direct, &direct),
            cpu_per_call_us(agent_proxied, &proxied),
            cpu_per_call_us(server_used, &proxied)
        );
        ratios.push(ratio);
        overheads.push(overhead);
    }
    println!(
        "  median of the rounds: proxy throughput {:.0}% of direct, p50 overhead {:.2} ms",
        median(&mut ratios),
        median(&mut overheads)
    );
    let direct = load(&agent.url, 1, length).await;
    let proxied = load(&proxy_url, 1, length).await;
    println!("the real agent, 1 connection:");
    direct.print("direct to the agent");
    proxied.print("through the proxy");
    print_comparison(&direct, &proxied);
}

fn print_comparison(direct: &Run, proxied: &Run) {
    println!(
        "  p50 overhead {:.2} ms; proxy throughput {:.0}% of direct",
        proxied.p50_over_ms(direct),
        proxied.percent_of(direct)
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `/proc/{pid}/stat` counts CPU time in these (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

fn cpu_per_call_us(ticks: u64, run: &Run) -> f64 {
    ticks as f64 * 1e6 / TICKS_PER_SECOND / run.latencies.len() as f64
}

/// [`load`], with the CPU time each of `pids` used meanwhile, in ticks.
async fn load_measuring<const N: usize>(
    pids: [u32; N],
    url: &str,
    connections: usize,
    length: Duration,
) -> (Run, [u64; N]) {
    let ticks = || pids.map(|pid| cpu_ticks(pid).expect("a running process's CPU time"));
    let before = ticks();
    let run = load(url, connections, length).await;
    let after = ticks();
    (run, std::array::from_fn(|i| after[i] - before[i]))
}

/// The process's user and system CPU time so far, in ticks; `None` once it is gone.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from the state on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

fn message() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "role": "user", "messageId": uuid::Uuid::new_v4(), "parts": [{"kind": "text", "text": "hi"}]}}})
}

struct Run {
    latencies: Vec<Duration>,
    errors: u64,
    length: Duration,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.length.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let index = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        self.latencies[index].as_secs_f64() * 1000.0
    }

    fn p50_ms(&self) -> f64 {
        self.percentile_ms(0.5)
    }

    /// How much later this run's p50 is than `base`'s.
    fn p50_over_ms(&self, base: &Run) -> f64 {
        self.p50_ms() - base.p50_ms()
    }

    /// This run's throughput as a percentage of `base`'s.
    fn percent_of(&self, base: &Run) -> f64 {
        100.0 * self.per_second() / base.per_second()
    }

    fn print(&self, label: &str) {
        println!(
            "  {label:<22} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
            self.per_second(),
            self.p50_ms(),
            self.percentile_ms(0.99),
            self.errors
        );
    }
}

/// `connections` workers posting to `url` back to back for `length`.
async fn load(url: &str, connections: usize, length: Duration) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let body = message().to_string();
    let stop = Instant::now() + length;
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, body, errors) = (
            client.clone(),
            url.to_string(),
            body.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < stop {
                let started = Instant::now();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(started.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    latencies.sort();
    Run {
        latencies,
        errors: errors.load(Ordering::Relaxed),
        length,
    }
}

/// `CONVERSATIONS` calls at once to the slow agent, while the server's RSS is sampled.
async fn conversations(server: &TestServer, id: &str) {
    let pid = server.pid().expect("running");
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(rss_kib(pid).expect("the server's VmRSS")));
    let idle = peak.load(Ordering::Relaxed);
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let url = server.url(&format!("/workspaces/{id}/a2a"));
    let started = Instant::now();
    let calls: Vec<_> = (0..CONVERSATIONS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let sent = client.post(&url).json(&message()).send().await;
                matches!(sent, Ok(response) if response.status().is_success())
            })
        })
        .collect();
    let mut completed = 0;
    for call in calls {
        completed += usize::from(call.await.unwrap());
    }
    let wall = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    println!(
        "{CONVERSATIONS} concurrent conversations, agent answers after {SLOW_ANSWER:?}: {completed} completed, {} errors, wall {:.2} s, server RSS idle {:.1} MiB, peak {:.1} MiB",
        CONVERSATIONS - completed,
        wall.as_secs_f64(),
        idle as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );
}

/// The process's resident set (VmRSS) in KiB; `None` once it is gone (never read as 0).
fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
}
