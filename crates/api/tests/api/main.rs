//! The API's integration tests, one test binary (one link) for all of them: each module is one
//! area, run through the real router against real PostgreSQL.

mod common;

mod a2a_proxy;
mod a2a_recorder;
mod background_tasks;
mod bundles;
mod bundles_eic;
mod events_stream;
mod external;
mod files_eic;
mod files_local;
mod hostile_input;
mod lifecycle;
mod memories;
mod messaging_routes;
mod metadata_auth;
mod metadata_middleware;
mod metadata_model;
mod metadata_workspaces;
mod org_templates;
mod panels_budget_audit_traces;
mod panels_viewport_approvals;
mod plugins;
mod plugins_eic;
mod registry_routes;
mod schedules;
mod security_matrix;
mod settings_config;
mod settings_openapi;
mod settings_secrets;
mod settings_tokens;
mod templates;
mod tenant_proxy;
mod terminal_eic;
mod uploads_delegations;
mod workspace_cache;
