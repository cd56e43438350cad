//! The store's integration tests against real PostgreSQL, one test binary for all of them.

mod adopt;
mod metadata_store;
