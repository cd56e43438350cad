//! Settings of workspaces and of the platform: secrets (per workspace and global), workspace and
//! org tokens, the per-workspace config document and the transcript proxy.

pub mod config;
pub mod org_tokens;
pub mod secrets;
pub mod tokens;
pub mod transcript;
pub mod types;
