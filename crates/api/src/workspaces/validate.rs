//! The field rules create and PATCH share.

use std::path::{Component, Path as FsPath};

use crate::ApiError;

/// `workspace_dir` may not point into the system's own directories.
const FORBIDDEN_DIRS: [&str; 10] = [
    "/etc", "/var", "/proc", "/sys", "/dev", "/boot", "/sbin", "/bin", "/lib", "/usr",
];

/// The original's `validateWorkspaceFields` for one string field, with its message.
pub(super) fn check_field(field: &str, value: &str) -> Result<(), String> {
    if value.contains(['\n', '\r']) {
        return Err(format!("{field} must not contain newline characters"));
    }
    if matches!(field, "name" | "role")
        && value.contains(['{', '}', '[', ']', '|', '>', '*', '&', '!'])
    {
        return Err(format!("{field} contains invalid characters"));
    }
    let limit = match field {
        "name" => 255,
        "role" => 1000,
        _ => 100,
    };
    if value.len() > limit {
        return Err(format!("{field} must be at most {limit} characters"));
    }
    Ok(())
}

pub(super) fn check_workspace_dir(dir: &str) -> Result<(), ApiError> {
    let path = FsPath::new(dir);
    let escapes = path.components().any(|c| matches!(c, Component::ParentDir));
    let system = FORBIDDEN_DIRS
        .iter()
        .any(|forbidden| path.starts_with(forbidden));
    if !path.is_absolute() || escapes || dir.contains("..") || system {
        return Err(ApiError::BadRequest(
            "invalid workspace directory".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_like_the_original() {
        assert!(check_field("name", "ok name").is_ok());
        assert_eq!(
            check_field("name", "a\nb").unwrap_err(),
            "name must not contain newline characters"
        );
        assert_eq!(
            check_field("role", "a|b").unwrap_err(),
            "role contains invalid characters"
        );
        assert!(check_field("model", "a|b").is_ok());
        assert_eq!(
            check_field("name", &"n".repeat(256)).unwrap_err(),
            "name must be at most 255 characters"
        );
        assert!(check_field("runtime", &"r".repeat(101)).is_err());
    }

    #[test]
    fn workspace_dir_rules() {
        assert!(check_workspace_dir("/home/me/project").is_ok());
        assert!(check_workspace_dir("relative").is_err());
        assert!(check_workspace_dir("/home/../etc").is_err());
        assert!(check_workspace_dir("/etc/x").is_err());
        assert!(check_workspace_dir("/usr").is_err());
        assert!(check_workspace_dir("/usrlocal").is_ok());
    }
}
