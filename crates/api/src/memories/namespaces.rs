//! A workspace's memory namespaces, derived as the original's resolver does
//! (`internal/memory/namespace/resolver.go:84-232` at 624ef4d0): its own, its team's (its parent,
//! or itself for a root) and its org's (its root); all readable, the org writable by the root only.

use serde::Serialize;
use store::memories::{ChainLink, NamespaceSet};
use utoipa::ToSchema;
use uuid::Uuid;

/// One namespace as the Memory tab lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Namespace {
    pub name: String,
    /// `workspace`, `team` or `org`.
    pub kind: &'static str,
    pub label: String,
}

/// The three namespaces of a workspace, from its chain up to the root.
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub workspace: ChainLink,
    pub team: ChainLink,
    pub org: ChainLink,
}

impl Namespaces {
    /// `None` when the chain is empty (no such workspace).
    pub fn from_chain(chain: Vec<ChainLink>) -> Option<Self> {
        let workspace = chain.first()?.clone();
        let team = chain.get(1).unwrap_or(&workspace).clone();
        let org = chain.last()?.clone();
        Some(Self {
            workspace,
            team,
            org,
        })
    }

    fn is_root(&self) -> bool {
        self.workspace.id == self.org.id
    }

    /// Every readable namespace, in the resolver's order.
    pub fn readable(&self) -> Vec<Namespace> {
        vec![
            namespace("workspace", &self.workspace),
            namespace("team", &self.team),
            namespace("org", &self.org),
        ]
    }

    /// The namespaces this workspace may write (and delete from).
    pub fn writable(&self) -> Vec<Namespace> {
        let mut writable = self.readable();
        if !self.is_root() {
            writable.pop();
        }
        writable
    }

    /// The readable namespaces among `requested` (all of them when it is `None`), as a set.
    pub fn readable_set(&self, requested: Option<&str>) -> NamespaceSet {
        let keep = |kind: &str, link: &ChainLink| {
            let name = format!("{kind}:{}", link.id);
            requested
                .is_none_or(|wanted| wanted == name)
                .then_some(link.id)
        };
        NamespaceSet {
            workspace: keep("workspace", &self.workspace),
            team: keep("team", &self.team),
            org: keep("org", &self.org),
        }
    }

    /// The namespaces a delete may reach.
    pub fn writable_set(&self) -> NamespaceSet {
        NamespaceSet {
            workspace: Some(self.workspace.id),
            team: Some(self.team.id),
            org: self.is_root().then_some(self.org.id),
        }
    }

    /// This workspace's own namespace, which the plugin checks deletes against.
    pub fn own_name(&self) -> String {
        format!("workspace:{}", self.workspace.id)
    }

    /// The names of the readable namespaces among `requested`.
    pub fn readable_names(&self, requested: Option<&str>) -> Vec<String> {
        self.readable()
            .into_iter()
            .map(|namespace| namespace.name)
            .filter(|name| requested.is_none_or(|wanted| wanted == name))
            .collect()
    }
}

fn namespace(kind: &'static str, link: &ChainLink) -> Namespace {
    Namespace {
        name: format!("{kind}:{}", link.id),
        kind,
        label: label(kind, link.id, &link.name),
    }
}

/// The tab's label (`handlers/memories_v2.go:386-429`): the workspace's name, else its id
/// (shortened, except for an org).
fn label(kind: &str, id: Uuid, name: &str) -> String {
    let title = match kind {
        "workspace" => "Workspace",
        "team" => "Team",
        _ => "Org",
    };
    let id = id.to_string();
    let shown = match (name.is_empty(), kind) {
        (false, _) => name,
        (true, "org") => id.as_str(),
        (true, _) => &id[..8],
    };
    format!("{title} ({shown})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: u128, name: &str) -> ChainLink {
        ChainLink {
            id: Uuid::from_u128(id),
            name: name.to_string(),
        }
    }

    #[test]
    fn a_root_is_its_own_team_and_org_and_may_write_all_three() {
        let namespaces = Namespaces::from_chain(vec![link(1, "root")]).unwrap();
        let names: Vec<_> = namespaces.writable().into_iter().map(|n| n.label).collect();
        assert_eq!(names, ["Workspace (root)", "Team (root)", "Org (root)"]);
    }

    #[test]
    fn a_grandchild_reads_its_parent_team_and_root_org_but_cannot_write_the_org() {
        let namespaces =
            Namespaces::from_chain(vec![link(3, "leaf"), link(2, "mid"), link(1, "top")]).unwrap();
        let readable: Vec<_> = namespaces.readable().into_iter().map(|n| n.name).collect();
        assert_eq!(readable[1], format!("team:{}", Uuid::from_u128(2)));
        assert_eq!(readable[2], format!("org:{}", Uuid::from_u128(1)));
        assert_eq!(namespaces.writable().len(), 2);
        assert_eq!(namespaces.writable_set().org, None);
    }

    #[test]
    fn labels_fall_back_to_the_id() {
        let id = Uuid::from_u128(0xabcdef12_0000_0000_0000_000000000000);
        assert_eq!(label("workspace", id, ""), "Workspace (abcdef12)");
        assert_eq!(label("org", id, ""), format!("Org ({id})"));
    }
}
