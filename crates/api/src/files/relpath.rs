//! The only way a path reaches a file backend: a validated relative path and a root from the
//! allow-list.

use std::fmt;

/// Longest accepted path, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted component, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a path was refused. Every variant answers 400 `invalid path` (or `invalid request body`
/// inside a multi-file body); the variant is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelPathError {
    #[error("empty path")]
    Empty,
    #[error("absolute path")]
    Absolute,
    #[error("parent-directory component")]
    ParentComponent,
    #[error("NUL, backslash or control character")]
    ForbiddenCharacter,
    #[error("path too long")]
    TooLong,
}

/// A relative path that cannot leave the directory it is joined to: no leading `/`, no `..`
/// component, no NUL, backslash or control character, at least one real component. `.` and
/// empty components (`a//b`, `a/./b`, a trailing `/`) are dropped, so the stored form is
/// canonical: components joined by single `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub fn parse(raw: &str) -> Result<RelPath, RelPathError> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(RelPathError::TooLong);
        }
        if raw.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(RelPathError::ForbiddenCharacter);
        }
        if raw.starts_with('/') {
            return Err(RelPathError::Absolute);
        }
        let mut components = Vec::new();
        for component in raw.split('/') {
            match component {
                "" | "." => continue,
                ".." => return Err(RelPathError::ParentComponent),
                c if c.len() > MAX_COMPONENT_BYTES => return Err(RelPathError::TooLong),
                c => components.push(c),
            }
        }
        if components.is_empty() {
            return Err(RelPathError::Empty);
        }
        Ok(RelPath(components.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, each a plain name (never empty, `.` or `..`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The message of a refused `?root=`, exactly as the original.
pub const ROOT_MESSAGE: &str = "root must be one of: /configs, /workspace, /home, /plugins";

/// The four browsable roots of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    Configs,
    Workspace,
    Home,
    Plugins,
}

impl Root {
    pub const ALL: [Root; 4] = [Root::Configs, Root::Workspace, Root::Home, Root::Plugins];

    /// Parses `?root=`; absent means `/configs`, present but empty is invalid (the original's
    /// `DefaultQuery` gave "" only for an absent key).
    pub fn parse(raw: Option<&str>) -> Option<Root> {
        match raw.unwrap_or("/configs") {
            "/configs" => Some(Root::Configs),
            "/workspace" => Some(Root::Workspace),
            "/home" => Some(Root::Home),
            "/plugins" => Some(Root::Plugins),
            _ => None,
        }
    }

    /// The folder of this root inside a local workspace directory.
    pub fn local_dir_name(self) -> &'static str {
        match self {
            Root::Configs => "configs",
            Root::Workspace => "workspace",
            Root::Home => "home",
            Root::Plugins => "plugins",
        }
    }

    /// The absolute directory of this root on a workspace's instance: `/configs` is the runtime's
    /// managed-config directory, the others are literal (the original's map).
    pub fn remote_dir(self, runtime: &str) -> &'static str {
        match self {
            Root::Configs => match runtime.to_ascii_lowercase().as_str() {
                "hermes" => "/home/ubuntu/.hermes",
                "langgraph" | "external" => "/opt/configs",
                _ => "/configs",
            },
            Root::Workspace => "/workspace",
            Root::Home => "/home",
            Root::Plugins => "/plugins",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_relative_paths_in_canonical_form() {
        assert_eq!(
            RelPath::parse("config.yaml").unwrap().as_str(),
            "config.yaml"
        );
        assert_eq!(RelPath::parse("a/b/c.txt").unwrap().as_str(), "a/b/c.txt");
        assert_eq!(RelPath::parse("a//./b/").unwrap().as_str(), "a/b");
        assert_eq!(RelPath::parse("a..b").unwrap().as_str(), "a..b");
        assert_eq!(RelPath::parse("%2e%2e").unwrap().as_str(), "%2e%2e");
        assert_eq!(RelPath::parse("a/b/c.txt").unwrap().file_name(), "c.txt");
    }

    #[test]
    fn refuses_every_escape() {
        use RelPathError::*;
        let cases = [
            ("", Empty),
            (".", Empty),
            ("./", Empty),
            ("/", Absolute),
            ("/etc/passwd", Absolute),
            ("..", ParentComponent),
            ("../x", ParentComponent),
            ("a/../../x", ParentComponent),
            ("a/..", ParentComponent),
            ("a\\..\\b", ForbiddenCharacter),
            ("a\0b", ForbiddenCharacter),
            ("a\nb", ForbiddenCharacter),
            ("a\u{7f}b", ForbiddenCharacter),
            ("a\u{85}b", ForbiddenCharacter),
        ];
        for (raw, expected) in cases {
            assert_eq!(RelPath::parse(raw), Err(expected), "{raw:?}");
        }
        assert_eq!(RelPath::parse(&"a".repeat(256)), Err(TooLong));
        assert_eq!(RelPath::parse(&"a/".repeat(2049)), Err(TooLong));
    }

    #[test]
    fn roots_map_like_the_original() {
        assert_eq!(Root::parse(None), Some(Root::Configs));
        assert_eq!(Root::parse(Some("")), None);
        assert_eq!(Root::parse(Some("/plugins")), Some(Root::Plugins));
        assert_eq!(Root::parse(Some("/etc")), None);
        assert_eq!(Root::parse(Some("/configs/")), None);
        assert_eq!(Root::Configs.remote_dir("claude-code"), "/configs");
        assert_eq!(Root::Configs.remote_dir("Hermes"), "/home/ubuntu/.hermes");
        assert_eq!(Root::Configs.remote_dir("LANGGRAPH"), "/opt/configs");
        assert_eq!(Root::Configs.remote_dir("external"), "/opt/configs");
        assert_eq!(Root::Configs.remote_dir("something-new"), "/configs");
        assert_eq!(Root::Configs.remote_dir(""), "/configs");
        assert_eq!(Root::Home.remote_dir("hermes"), "/home");
        assert_eq!(Root::Workspace.remote_dir("langgraph"), "/workspace");
        assert_eq!(Root::Plugins.remote_dir("langgraph"), "/plugins");
    }

    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just(String::new()),
            Just("%2e%2e".to_string()),
            Just("..%2f".to_string()),
            Just("\u{ff0e}\u{ff0e}".to_string()),
            "[a-zA-Z0-9._-]{1,12}",
            any::<String>(),
        ]
    }

    fn raw_path() -> impl Strategy<Value = String> {
        (any::<bool>(), prop::collection::vec(component(), 0..8)).prop_map(
            |(leading_slash, parts)| {
                let joined = parts.join("/");
                if leading_slash {
                    format!("/{joined}")
                } else {
                    joined
                }
            },
        )
    }

    proptest! {
        /// Whatever the input, an accepted path joined under a root stays under it.
        #[test]
        fn accepted_paths_never_leave_the_root(raw in raw_path()) {
            if let Ok(path) = RelPath::parse(&raw) {
                let s = path.as_str();
                prop_assert!(!s.is_empty());
                prop_assert!(!s.starts_with('/'));
                prop_assert!(!s.contains('\\'));
                prop_assert!(!s.chars().any(char::is_control));
                for c in path.components() {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                }
                let joined = std::path::Path::new("/root").join(s);
                let mut depth = 0i32;
                for c in joined.components().skip(2) {
                    match c {
                        std::path::Component::ParentDir => depth -= 1,
                        std::path::Component::Normal(_) => depth += 1,
                        other => prop_assert!(false, "unexpected component {other:?}"),
                    }
                    prop_assert!(depth >= 0);
                }
            }
        }

        /// Parsing is idempotent: the canonical form parses to itself.
        #[test]
        fn canonical_form_is_a_fixed_point(raw in raw_path()) {
            if let Ok(path) = RelPath::parse(&raw) {
                prop_assert_eq!(RelPath::parse(path.as_str()), Ok(path.clone()));
            }
        }

        /// Any `..` component anywhere is refused.
        #[test]
        fn parent_components_are_refused(prefix in "[a-z/]{0,10}", suffix in "[a-z/]{0,10}") {
            let raw = format!("{prefix}/../{suffix}");
            prop_assert!(RelPath::parse(&raw).is_err());
        }
    }
}
