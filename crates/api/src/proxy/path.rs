//! The `/cp/*` allow-list and the path normalisation it is applied to.

/// Whether a normalised path may reach the control plane (`router/cp_proxy.go:29-62` at
/// 624ef4d0): `/cp/auth/`, `/cp/billing/`, `/cp/legal/` prefixes, `/cp/orgs` and
/// `/cp/templates` with or without a sub-path.
pub fn cp_allowed(path: &str) -> bool {
    const PREFIXES: [&str; 3] = ["/cp/auth/", "/cp/billing/", "/cp/legal/"];
    const TREES: [&str; 2] = ["/cp/orgs", "/cp/templates"];
    PREFIXES.iter().any(|prefix| path.starts_with(prefix))
        || TREES.iter().any(|tree| {
            path == *tree
                || path
                    .strip_prefix(tree)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The path with percent-escapes decoded per segment and `.`/`..` segments resolved; `None` when
/// a segment decodes to something that would change the path's structure (a `/`, a `\`, a NUL)
/// or is not UTF-8, or `..` climbs above the root. Decoded, so what is checked is what is sent.
pub fn normalise(path: &str) -> Option<String> {
    let mut segments: Vec<String> = Vec::new();
    let raw = path.strip_prefix('/')?;
    let count = raw.split('/').count();
    for (index, segment) in raw.split('/').enumerate() {
        let decoded = percent_decode(segment)?;
        if decoded.contains(['/', '\\', '\0']) {
            return None;
        }
        match decoded.as_str() {
            "." => {}
            ".." => {
                segments.pop()?;
            }
            "" if index + 1 < count => {}
            _ => segments.push(encode_segment(&decoded)),
        }
    }
    Some(format!("/{}", segments.join("/")))
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Re-escapes what a path segment may not carry literally.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte);
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{cp_allowed, normalise};

    fn allowed(path: &str) -> bool {
        normalise(path).is_some_and(|p| cp_allowed(&p))
    }

    #[test]
    fn the_allow_list_holds_on_the_normalised_path() {
        assert!(allowed("/cp/auth/me"));
        assert!(allowed("/cp/orgs"));
        assert!(allowed("/cp/orgs/acme/members"));
        assert!(allowed("/cp/templates"));
        assert!(!allowed("/cp/auth"));
        assert!(!allowed("/cp/orgsX"));
        assert!(!allowed("/cp/../workspaces"));
        assert!(!allowed("/cp/orgs/../admin/tenants"));
        assert!(!allowed("/cp/orgs/%2e%2e/admin"));
        assert!(!allowed("/cp/orgs%2f..%2fadmin"));
        assert!(!allowed("/cp/auth/%2e%2e/%2e%2e/workspaces"));
        assert_eq!(normalise("/cp/auth/./me").as_deref(), Some("/cp/auth/me"));
        assert_eq!(
            normalise("/cp/auth/a%20b").as_deref(),
            Some("/cp/auth/a%20b")
        );
        assert_eq!(normalise("/../x"), None);
    }
}
