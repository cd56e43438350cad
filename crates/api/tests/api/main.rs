//! The API's integration tests, one test binary (one link) for all of them: each module is one
//! area, run through the real router against real PostgreSQL.

mod common;

mod a2a_proxy;
mod events_stream;
mod files_eic;
mod files_local;
mod hostile_input;
mod messaging_routes;
mod metadata_auth;
mod metadata_middleware;
mod metadata_model;
mod metadata_workspaces;
mod registry_routes;
mod security_matrix;
mod templates;
mod workspace_cache;
