use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// The underlying cause of a failed step; shared so that one failed setup can be handed to every
/// caller that waited for it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Wraps any error as a [`Cause`].
pub(crate) fn cause(err: impl std::error::Error + Send + Sync + 'static) -> Cause {
    Arc::new(err)
}

/// A cause that is only a message (for faults we detect ourselves, such as a refused host key).
pub(crate) fn cause_msg(message: impl Into<String>) -> Cause {
    #[derive(Debug)]
    struct Message(String);
    impl fmt::Display for Message {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Message {}
    Arc::new(Message(message.into()))
}

/// The step of the EIC path that failed; named in the API's error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// `DescribeInstances` / `DescribeInstanceConnectEndpoints`.
    Discovery,
    /// `SendSSHPublicKey`.
    KeyPush,
    /// The presigned `openTunnel` WebSocket.
    Tunnel,
    /// SSH key exchange and authentication, or the SSH transport later on.
    Ssh,
    /// The SFTP session and its requests.
    Sftp,
    /// A terminal's PTY and shell on the connection.
    Shell,
    /// The operation's whole budget (`operation_timeout`), spent before any step reported.
    Operation,
}

impl Step {
    /// Stable lower-case name, used in metrics labels and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Discovery => "discovery",
            Step::KeyPush => "key_push",
            Step::Tunnel => "tunnel",
            Step::Ssh => "ssh",
            Step::Sftp => "sftp",
            Step::Shell => "shell",
            Step::Operation => "operation",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the EIC path, told apart by variant (never by message text).
///
/// `Display` names the failing step only; the remote detail is in [`std::error::Error::source`],
/// for the log, never for the client.
#[derive(Debug, Clone, Error)]
pub enum EicError {
    /// EC2 discovery (instance address, endpoint) failed.
    #[error("EIC discovery failed")]
    Discovery {
        #[source]
        source: Cause,
    },
    /// `SendSSHPublicKey` failed.
    #[error("EIC key push failed")]
    KeyPush {
        #[source]
        source: Cause,
    },
    /// The `openTunnel` WebSocket could not be opened or broke.
    #[error("EIC tunnel failed")]
    Tunnel {
        #[source]
        source: Cause,
    },
    /// SSH key exchange, host key check or authentication failed, or the SSH transport broke.
    #[error("EIC SSH session failed")]
    Ssh {
        #[source]
        source: Cause,
    },
    /// The SFTP server answered with an error status (other than "no such file").
    #[error("SFTP request failed")]
    Sftp {
        #[source]
        source: Cause,
    },
    /// The SFTP channel itself failed (closed, broken, unanswered): a transport fault.
    #[error("SFTP channel failed")]
    SftpChannel {
        #[source]
        source: Cause,
    },
    /// sshd refused the terminal's PTY or shell (the connection itself is fine).
    #[error("EIC shell failed")]
    Shell {
        #[source]
        source: Cause,
    },
    /// The connection already carries its cap of shells.
    #[error("too many terminals are open on this instance (at most {max})")]
    ShellsFull { max: usize },
    /// A step ran out of its time budget.
    #[error("EIC {step} timed out")]
    Timeout { step: Step },
    /// The instance is unknown, not running, or has no usable EIC endpoint (the API answers 409).
    #[error("instance {instance_id} is not reachable through EC2 Instance Connect: {reason}")]
    InstanceUnavailable { instance_id: String, reason: String },
    /// The remote file does not exist (SFTP status `NoSuchFile`), or is a directory.
    #[error("remote file not found")]
    NotFound,
    /// The instance refused the file operation (SFTP status `PermissionDenied`), although the
    /// SFTP server runs with root's rights (say an immutable file or a read-only mount).
    #[error("permission denied on the workspace host")]
    PermissionDenied,
    /// The remote file is bigger than the caller allows.
    #[error("remote file is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    /// The connection setup was abandoned (it panicked twice in a row).
    #[error("EIC connection setup aborted")]
    SetupAborted,
    /// The settings cannot work (for example a zero channel cap).
    #[error("invalid EIC configuration: {0}")]
    InvalidConfig(String),
    /// The pool is closed (server shutting down).
    #[error("EIC pool is closed")]
    Closed,
}

impl EicError {
    /// The step that failed, when the error belongs to one.
    pub fn step(&self) -> Option<Step> {
        match self {
            EicError::Discovery { .. } => Some(Step::Discovery),
            EicError::KeyPush { .. } => Some(Step::KeyPush),
            EicError::Tunnel { .. } => Some(Step::Tunnel),
            EicError::Ssh { .. } => Some(Step::Ssh),
            EicError::Sftp { .. } | EicError::SftpChannel { .. } => Some(Step::Sftp),
            EicError::Shell { .. } | EicError::ShellsFull { .. } => Some(Step::Shell),
            EicError::Timeout { step } => Some(*step),
            EicError::InstanceUnavailable { .. } => Some(Step::Discovery),
            EicError::NotFound
            | EicError::PermissionDenied
            | EicError::TooLarge { .. }
            | EicError::SetupAborted
            | EicError::InvalidConfig(_)
            | EicError::Closed => None,
        }
    }

    /// Whether the error means the connection it happened on can no longer be trusted, so the
    /// pool must drop it and build a fresh one for the next call.
    pub fn is_transport(&self) -> bool {
        match self {
            EicError::Tunnel { .. } | EicError::Ssh { .. } | EicError::SftpChannel { .. } => true,
            EicError::Timeout { step } => {
                matches!(
                    step,
                    Step::Tunnel | Step::Ssh | Step::Sftp | Step::Operation
                )
            }
            EicError::Discovery { .. }
            | EicError::KeyPush { .. }
            | EicError::Sftp { .. }
            | EicError::Shell { .. }
            | EicError::ShellsFull { .. }
            | EicError::InstanceUnavailable { .. }
            | EicError::NotFound
            | EicError::PermissionDenied
            | EicError::TooLarge { .. }
            | EicError::SetupAborted
            | EicError::InvalidConfig(_)
            | EicError::Closed => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_faults_are_told_apart_by_variant() {
        let io = || cause(std::io::Error::other("boom"));
        assert!(EicError::Tunnel { source: io() }.is_transport());
        assert!(EicError::Ssh { source: io() }.is_transport());
        assert!(EicError::SftpChannel { source: io() }.is_transport());
        assert!(EicError::Timeout { step: Step::Sftp }.is_transport());
        assert!(!EicError::Sftp { source: io() }.is_transport());
        assert!(!EicError::NotFound.is_transport());
        assert!(!EicError::KeyPush { source: io() }.is_transport());
        assert!(
            !EicError::Timeout {
                step: Step::KeyPush
            }
            .is_transport()
        );
    }

    #[test]
    fn display_names_the_step_but_not_the_cause() {
        let err = EicError::Tunnel {
            source: cause_msg("403 secret detail"),
        };
        assert_eq!(err.to_string(), "EIC tunnel failed");
        assert_eq!(err.step(), Some(Step::Tunnel));
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(source, "403 secret detail");
    }
}
