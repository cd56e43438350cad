//! All SQL of workspace-server lives here: typed rows, queries, migrations and the secrets crypto.
//!
//! Queries are free functions taking an executor, so callers compose transactions. This crate never
//! imports axum and knows nothing about HTTP.

pub mod activity;
pub mod adopt;
pub mod crypto;
pub mod error;
pub mod events;
pub mod file_targets;
pub mod layouts;
pub mod messaging;
pub mod migrate;
pub mod registry;
pub mod secrets;
pub mod tokens;
pub mod workspace_status;
pub mod workspaces;

pub use error::StoreError;
pub use migrate::{MIGRATOR, migrate};

pub use sqlx::PgPool;
