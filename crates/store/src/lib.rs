//! All SQL of workspace-server lives here: typed rows, queries, migrations and the secrets crypto.
//!
//! Queries are free functions taking an executor, so callers compose transactions. This crate never
//! imports axum and knows nothing about HTTP.

pub mod activity;
pub mod adopt;
pub mod approvals;
pub mod audit;
pub mod batch;
pub mod budget;
pub mod bundles;
pub mod crypto;
pub mod db;
pub mod delegations;
pub mod error;
pub mod events;
pub mod file_targets;
pub mod key_rotation;
pub mod layouts;
pub mod memories;
pub mod messaging;
pub mod migrate;
pub mod org;
pub mod plugins;
pub mod provisioning;
pub mod registry;
pub mod schedules;
pub mod secret_scopes;
pub mod secrets;
pub mod session_search;
pub mod token_admin;
pub mod tokens;
pub mod uploads;
pub mod viewport;
pub mod workspace_config;
pub mod workspace_status;
pub mod workspaces;

pub use error::StoreError;
pub use migrate::{MIGRATOR, migrate};

pub use db::Db;
pub use sqlx::PgPool;
