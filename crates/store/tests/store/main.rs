//! The store's integration tests against real PostgreSQL, one test binary for all of them.

mod adopt;
mod db_lane;
mod metadata_store;
