//! The agents' side of the server: registration, heartbeats and cards (`registry.rs`), discovery
//! of peers (`discovery.rs`), the activity log (`activity.rs`), the agents' token guards
//! (`guard.rs`), and the domain rules kept out of the handlers: which URLs an agent may register
//! (`url.rs`) and how heartbeats move a workspace between statuses (`status.rs`).

pub mod activity;
pub mod discovery;
pub mod guard;
pub mod registry;
pub mod status;
pub mod url;
