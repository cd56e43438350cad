//! The agents' domain rules, kept out of the handlers: which URLs an agent may register, and how
//! heartbeats move a workspace between statuses.

pub mod status;
pub mod url;
