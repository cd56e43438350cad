//! Try the EIC path by hand: write, read, list and delete a file on one instance, with timings
//! (a cold write, cold first reads each on a fresh pool, warm reads, a 3 MB round trip).
//!
//! ```sh
//! # against eic-sim: export the values of its ready line, then
//! AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//! AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true WORKSPACE_EC2_OS_USER=<os_user> \
//! EIC_SFTP_COMMAND=internal-sftp cargo run --example eic_try -- i-0123456789abcdef0
//! ```

use std::time::Instant;

use eic_pool::{EicConfig, EicPool};

/// Cold first reads measured, each on a fresh pool.
const COLD_READS: usize = 5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=eic_pool=info shows each setup step's span with its duration (`time.busy`).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
    let instance = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: eic_try <instance-id>"))?;
    let config = EicConfig::from_env()?;
    let pool = EicPool::new(config.clone()).await?;
    let path = "/configs/eic-try/hello.txt";

    let timed = Instant::now();
    pool.write_file(&instance, path, b"hello from eic-pool\n")
        .await?;
    println!("cold write: {:?}", timed.elapsed());

    // Cold first reads: each on a fresh pool (no connection, no cached discovery).
    let mut cold = Vec::new();
    for _ in 0..COLD_READS {
        let fresh = EicPool::new(config.clone()).await?;
        let timed = Instant::now();
        fresh.read_file(&instance, path, 1 << 20).await?;
        cold.push(timed.elapsed());
        fresh.close().await;
    }
    println!("cold reads: {cold:?}");
    cold.sort();
    println!("cold read: median {:?}", cold[COLD_READS / 2]);

    let mut warm = Vec::new();
    for _ in 0..50 {
        let timed = Instant::now();
        let data = pool.read_file(&instance, path, 1 << 20).await?;
        warm.push(timed.elapsed());
        anyhow::ensure!(data == b"hello from eic-pool\n", "read back something else");
    }
    warm.sort();
    println!(
        "warm read: median {:?}, min {:?}, max {:?} (50 reads)",
        warm[25], warm[0], warm[49]
    );
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let timed = Instant::now();
    pool.write_file(&instance, "/configs/eic-try/big.bin", &big)
        .await?;
    let back = pool
        .read_file(&instance, "/configs/eic-try/big.bin", 1 << 30)
        .await?;
    anyhow::ensure!(back == big, "3 MB round trip differs");
    println!("3 MB write + read: {:?}", timed.elapsed());
    pool.delete_file(&instance, "/configs/eic-try/big.bin")
        .await?;
    let listing = pool.list_dir(&instance, "/configs", 3).await?;
    println!("list: {listing:?}");
    if std::env::var_os("EIC_TRY_KEEP").is_some() {
        return Ok(()); // leave the file, to look at it on the instance
    }
    pool.delete_file(&instance, path).await?;
    match pool.read_file(&instance, path, 1 << 20).await {
        Err(eic_pool::EicError::NotFound) => println!("deleted: read says NotFound"),
        other => anyhow::bail!("expected NotFound after delete, got {other:?}"),
    }
    println!("status: {:?}", pool.status());
    pool.close().await;
    Ok(())
}
