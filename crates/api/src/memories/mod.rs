//! Memories: what agents commit and recall (`v1`), the canvas's Memory tab (`v2`), the operators'
//! export and import (`admin`) and the per-workspace key-value store (`kv`).

pub mod admin;
pub mod kv;
pub mod namespaces;
pub mod plugin;
pub mod redact;
pub mod v1;
pub mod v2;
