//! EC2 Instance Connect, natively: an in-memory key, discovery, the key push, a SigV4-presigned
//! WebSocket tunnel, a russh session over it, SFTP file operations, and a keyed pool of
//! authenticated connections with leases that release on `Drop`.
//!
//! Public surface used by the API layer (keep it stable; other crates build against it):
//! [`EicConfig`], [`EicPool`] with `read_file` / `write_file` / `delete_file` / `list_dir`,
//! [`RemoteEntry`], [`EicError`] and [`Step`].

mod error;

pub use error::{EicError, Step};

use std::time::Duration;

/// Settings of the EIC path, parsed once by the server.
#[derive(Debug, Clone)]
pub struct EicConfig {
    /// AWS region (`AWS_REGION`).
    pub region: String,
    /// Login user on the instances (`WORKSPACE_EC2_OS_USER`, default `ubuntu`).
    pub os_user: String,
    /// Command that runs the SFTP server on a channel (`EIC_SFTP_COMMAND`).
    pub sftp_command: String,
    /// Per-operation budget; the API answers 504 past it.
    pub operation_timeout: Duration,
    /// Close a connection unused for this long.
    pub idle_timeout: Duration,
    /// Recycle every connection before the tunnel's maximum duration.
    pub max_lifetime: Duration,
    /// Idle connections kept at most (`EIC_POOL_MAX_INSTANCES`), least recently used closed first.
    pub max_instances: usize,
    /// Concurrent tunnels at most, across all instances (an endpoint allows 20).
    pub max_tunnels: usize,
    /// Concurrent channels at most on one connection (sshd's `MaxSessions` is 10).
    pub max_channels_per_connection: usize,
}

impl Default for EicConfig {
    fn default() -> Self {
        Self {
            region: "us-east-2".into(),
            os_user: "ubuntu".into(),
            sftp_command: "sudo -n /usr/lib/openssh/sftp-server".into(),
            operation_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(3300),
            max_instances: 32,
            max_tunnels: 16,
            max_channels_per_connection: 8,
        }
    }
}

/// One entry of a remote directory listing, relative to the listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub path: String,
    pub size: u64,
    pub dir: bool,
}
