//! The middleware chain's pieces, one module each; `routes::router` assembles them.

pub mod body_deadline;
pub mod client_addr;
pub mod cors;
pub mod error_log;
pub mod metrics;
pub mod rate_limit;
pub mod security_headers;
pub mod sync;
pub mod tenant_guard;
pub mod trace;
pub mod wire;
