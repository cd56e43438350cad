//! The status of a workspace: the `workspace_status` enum of the schema, as a Rust enum.

use std::fmt;

/// A workspace's `status` column. `Unset` stands for a NULL column (written by the Go original
/// at times), which the API shows as `""`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkspaceStatus {
    Provisioning,
    Online,
    Offline,
    Degraded,
    Failed,
    Removed,
    Paused,
    Hibernated,
    AwaitingAgent,
    Hibernating,
    Unset,
}

impl WorkspaceStatus {
    /// Every value, in the schema's order (then `Unset`).
    pub const ALL: [WorkspaceStatus; 11] = [
        Self::Provisioning,
        Self::Online,
        Self::Offline,
        Self::Degraded,
        Self::Failed,
        Self::Removed,
        Self::Paused,
        Self::Hibernated,
        Self::AwaitingAgent,
        Self::Hibernating,
        Self::Unset,
    ];

    /// The column's text (`""` for `Unset`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Removed => "removed",
            Self::Paused => "paused",
            Self::Hibernated => "hibernated",
            Self::AwaitingAgent => "awaiting_agent",
            Self::Hibernating => "hibernating",
            Self::Unset => "",
        }
    }

    /// The status a column's text names; `Unset` for `""` (and for a value the schema does not
    /// have, which its enum type rules out).
    pub fn from_column(text: &str) -> WorkspaceStatus {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .unwrap_or(Self::Unset)
    }
}

impl fmt::Display for WorkspaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for WorkspaceStatus {
    fn from(text: &str) -> Self {
        WorkspaceStatus::from_column(text)
    }
}

#[cfg(test)]
mod tests {
    use super::WorkspaceStatus;

    #[test]
    fn every_status_reads_back_from_its_text() {
        for status in WorkspaceStatus::ALL {
            assert_eq!(WorkspaceStatus::from_column(status.as_str()), status);
        }
        assert_eq!(WorkspaceStatus::from_column(""), WorkspaceStatus::Unset);
    }
}
