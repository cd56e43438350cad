use thiserror::Error;

/// The step of the EIC path that failed; named in the API's error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Discovery,
    KeyPush,
    Tunnel,
    Ssh,
    Sftp,
}

/// Errors of the EIC path, told apart by variant (never by message text).
#[derive(Debug, Error)]
pub enum EicError {
    /// The remote file does not exist (SFTP status `NoSuchFile`).
    #[error("remote file not found")]
    NotFound,
}
