//! Config panel load against `eic-sim --profile aws` through the real server (release build):
//! cold (median of 5, each on an instance the server has not touched: setup and discovery
//! uncached), warm (median of 20), and 20 concurrent users on 20 workspaces over 5 instances.
//! Run with `scripts/bench-panel`. Targets: warm ≤ 200 ms, cold ≤ 1.5 s.

// The black-box tests' harness (only part of it is used here).
#[allow(dead_code)]
#[path = "../tests/blackbox/harness/mod.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::panel::{PanelRig, instance_ids, load_panel, ms, quantile};

const COLD_RUNS: usize = 5;
const WARM_RUNS: usize = 20;
const USERS: usize = 20;
const INSTANCES: usize = 5;
const ROUNDS_PER_USER: usize = 5;

#[tokio::main]
async fn main() {
    run().await;
}

async fn run() {
    // The users' instances, then one fresh instance per cold run.
    let instances = instance_ids(INSTANCES + COLD_RUNS);
    let rig = PanelRig::start("aws", &instances).await;

    // Cold: a workspace on an instance nothing has reached yet, each run.
    let mut cold_totals = Vec::with_capacity(COLD_RUNS);
    let mut cold_paints = Vec::with_capacity(COLD_RUNS);
    let mut warm = Vec::with_capacity(WARM_RUNS);
    for run in 0..COLD_RUNS {
        let instance = &instances[INSTANCES + run];
        let id = rig
            .attached_workspace(&format!("bench-cold-{run}"), instance)
            .await;
        let cold = load_panel(&rig.server, &id).await;
        cold_totals.push(cold.total);
        cold_paints.push(cold.first_paint);
        if run == 0 {
            for _ in 0..WARM_RUNS {
                warm.push(load_panel(&rig.server, &id).await.total);
            }
        }
    }
    println!("single user, profile aws");
    println!(
        "  cold panel load: median total {} (first paint {}) of {COLD_RUNS}; totals: {}",
        ms(quantile(&cold_totals, 0.5)),
        ms(quantile(&cold_paints, 0.5)),
        cold_totals
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  warm panel load: median {} (p99 {}, {WARM_RUNS} runs)",
        ms(quantile(&warm, 0.5)),
        ms(quantile(&warm, 0.99))
    );

    // 20 users, each on their own workspace, 4 workspaces per instance; the first round is cold
    // for each instance not touched above.
    let mut ids = Vec::with_capacity(USERS);
    for user in 0..USERS {
        ids.push(
            rig.attached_workspace(&format!("bench-user-{user}"), &instances[user % INSTANCES])
                .await,
        );
    }
    let PanelRig { sim: _sim, server } = rig;
    let server = Arc::new(server);
    let mut users = tokio::task::JoinSet::new();
    for id in ids {
        let server = Arc::clone(&server);
        users.spawn(async move {
            let mut samples = Vec::with_capacity(ROUNDS_PER_USER);
            for _ in 0..ROUNDS_PER_USER {
                samples.push(load_panel(&server, &id).await.total);
            }
            samples
        });
    }
    let per_user: Vec<Vec<Duration>> = users.join_all().await;
    let first_rounds: Vec<Duration> = per_user.iter().map(|s| s[0]).collect();
    let later: Vec<Duration> = per_user
        .iter()
        .flat_map(|s| s[1..].iter().copied())
        .collect();
    println!(
        "{USERS} concurrent users, {USERS} workspaces over {INSTANCES} instances, profile aws"
    );
    println!(
        "  first round (mostly cold): p50 {} p99 {}",
        ms(quantile(&first_rounds, 0.5)),
        ms(quantile(&first_rounds, 0.99))
    );
    println!(
        "  warm rounds ({} loads): p50 {} p99 {}",
        later.len(),
        ms(quantile(&later, 0.5)),
        ms(quantile(&later, 0.99))
    );
}
