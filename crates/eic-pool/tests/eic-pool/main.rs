//! The pool's integration tests through `eic-sim` and a real OpenSSH sshd, one test binary for
//! all of them.

mod support;

mod concurrent_close;
mod configured_discovery;
mod setup_metrics;
mod stale_temp_files;
mod through_sim;
