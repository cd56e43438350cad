//! The environment a provision sends (`handlers/workspace_provision_shared.go:116-179` at
//! 624ef4d0): global then workspace secrets decrypted, the git identity, the model, role and
//! parent.

use std::collections::BTreeMap;

use store::provisioning::ProvisionTarget;
use store::secret_scopes::{Scope, SealedSecret};

/// Why an environment could not be assembled (the original's messages).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("failed to decrypt global secret")]
    GlobalSecret,
    #[error("failed to decrypt workspace secret")]
    WorkspaceSecret,
}

/// The environment of `target` from its sealed secrets (global rows first, as
/// `store::secret_scopes::sealed_for_workspace` returns them).
pub fn assemble(
    target: &ProvisionTarget,
    sealed: &[SealedSecret],
    crypto: &store::crypto::Crypto,
) -> Result<BTreeMap<String, String>, EnvError> {
    let mut env = BTreeMap::new();
    for secret in sealed {
        let plain = crypto
            .decrypt(&secret.encrypted_value, secret.encryption_version)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let value = match (plain, secret.scope) {
            (Some(value), _) => value,
            (None, Scope::Global) => return Err(EnvError::GlobalSecret),
            (None, Scope::Workspace) => return Err(EnvError::WorkspaceSecret),
        };
        env.insert(secret.key.clone(), value);
    }
    add_git_identity(&mut env, &target.name);
    // Restart payloads carry no model: it comes from the MODEL_PROVIDER secret
    // (`workspace_provision.go:717-753`).
    let model = env
        .get(store::secrets::MODEL_KEY)
        .cloned()
        .unwrap_or_default();
    if !model.is_empty() {
        env.insert("MODEL".into(), model.clone());
        if target.runtime == "hermes" {
            env.insert("HERMES_DEFAULT_MODEL".into(), model);
        }
    }
    if let Some(role) = target.role.as_deref().filter(|r| !r.is_empty()) {
        env.insert("MOLECULE_AGENT_ROLE".into(), role.to_string());
    }
    if let Some(parent) = target.parent_id {
        env.insert("PARENT_ID".into(), parent.to_string());
    }
    Ok(env)
}

/// `GIT_AUTHOR_*` and `GIT_COMMITTER_*`, each only when absent (`agent_git_identity.go:36-71`).
fn add_git_identity(env: &mut BTreeMap<String, String>, name: &str) {
    if name.trim().is_empty() {
        return;
    }
    let display = format!("Molecule AI {name}");
    let email = format!("{}@agents.moleculesai.app", email_slug(name));
    for (key, value) in [
        ("GIT_AUTHOR_NAME", &display),
        ("GIT_COMMITTER_NAME", &display),
        ("GIT_AUTHOR_EMAIL", &email),
        ("GIT_COMMITTER_EMAIL", &email),
    ] {
        env.entry(key.to_string()).or_insert_with(|| value.clone());
    }
}

/// The lowercased name with each run of characters outside `[a-z0-9]` replaced by one `-`, edge
/// hyphens trimmed.
fn email_slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::email_slug;

    #[test]
    fn slugs_fold_runs_and_trim_edges() {
        assert_eq!(email_slug("Research Lead"), "research-lead");
        assert_eq!(email_slug("  A__b!! c "), "a-b-c");
    }
}
