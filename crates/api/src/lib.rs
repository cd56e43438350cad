//! The HTTP layer of workspace-server: the route table (every route with its auth), the middleware
//! chain, extractors, thin handlers, and one [`ApiError`] mapped to HTTP in one place.
//!
//! Handlers hold no SQL (that is `store`) and no SSH (that is `eic-pool`).

pub mod admin;
pub mod agents;
pub mod auth;
pub mod background;
pub mod bundles;
pub mod config;
pub mod error;
pub mod events;
pub mod events_hub;
pub mod external;
pub mod extract;
pub mod files;
pub mod json;
pub mod lifecycle;
pub mod liveness;
pub mod memories;
pub mod messaging;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod org;
pub mod panels;
pub mod plugins;
pub mod provisioner;
pub mod proxy;
pub mod routes;
pub mod schedules;
pub mod settings;
pub mod state;
pub mod templates;
pub mod terminal;
pub mod workspace_cache;
pub mod workspaces;

pub use config::ApiConfig;
pub use error::ApiError;
pub use routes::{Access, RouteSpec, router};
pub use state::{AppState, Services};
