//! Black-box tests: the real `workspace-server` binary (the one Cargo builds for this package's
//! tests) started on a fresh database and a free port, driven over HTTP, one module per area.
//! One test binary for all of them; the harness is a module of it.

// The harness is shared with the benchmarks (`benches/`): not every helper is used here.
#[allow(dead_code)]
mod harness;

mod a2a_agents;
mod adopt_go_db;
mod agents_e2e;
mod dependencies;
mod dockerfiles;
mod entrypoint;
mod error_logs;
mod events_two_replicas;
mod faults;
mod foundation;
mod key_rotation;
mod logs_no_secrets;
mod logs_no_tokens;
mod metadata;
mod operations_doc;
mod panel;
mod postgres_tls;
mod production;
mod provisioning;
mod provisioning_sim;
mod schedules_two_replicas;
mod secrets_at_rest;
mod shutdown;
mod subcommands;
mod uploads_delegations;
