//! Plugins on the local backend: the registry, install (local and github sources), uninstall,
//! download, the org allowlist, and hostile plugins (symlinks, traversal names, size and entry
//! caps, digests), through the real router on real PostgreSQL.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{
    Reply, app, assert_error, insert_child_workspace, insert_workspace, send, send_with,
    test_config, test_state,
};
use api::ApiConfig;
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

pub struct Plugins {
    pub app: Router,
    pub db: PgPool,
    pub dir: tempfile::TempDir,
}

/// Writes a plugin folder `name` in `registry` with `files` (relative path → content).
pub fn plant(registry: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = registry.join(name);
    for (path, content) in files {
        let target = root.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
    root
}

const ECC_YAML: &str = "name: ignored\nversion: 1.2.0\ndescription: Everything\nauthor: me\ntags: [a]\nskills: [ecc-skill]\nruntimes: [claude_code]\n";

impl Plugins {
    pub async fn new(db: PgPool) -> Plugins {
        Plugins::with(db, |_| {}).await
    }

    pub async fn with(db: PgPool, tweak: impl FnOnce(&mut ApiConfig)) -> Plugins {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.plugins.dir = dir.path().join("registry");
        tweak(&mut config);
        let registry = config.plugins.dir.clone();
        std::fs::create_dir_all(&registry).unwrap();
        plant(
            &registry,
            "ecc",
            &[
                ("plugin.yaml", ECC_YAML),
                ("rules/one.md", "rule one"),
                ("skills/ecc-skill/SKILL.md", "skill"),
            ],
        );
        plant(
            &registry,
            "hermes-only",
            &[("plugin.yaml", "version: 0.1\nruntimes: [hermes]\n")],
        );
        plant(&registry, "bare", &[("README.md", "no manifest")]);
        Plugins {
            app: app(test_state(db.clone(), config)),
            db,
            dir,
        }
    }

    pub fn registry(&self) -> PathBuf {
        self.dir.path().join("registry")
    }

    pub fn configs(&self, id: Uuid) -> PathBuf {
        self.dir
            .path()
            .join("workspaces")
            .join(id.to_string())
            .join("configs")
    }

    pub async fn workspace(&self, runtime: &str) -> Uuid {
        insert_workspace(&self.db, &format!("ws-{}", Uuid::new_v4()), runtime, None).await
    }

    pub async fn install(&self, id: Uuid, source: &str) -> Reply {
        send(
            &self.app,
            "POST",
            &format!("/workspaces/{id}/plugins"),
            Some(&json!({ "source": source })),
        )
        .await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        send(&self.app, "GET", uri, None).await
    }

    pub async fn restarts(&self, id: Uuid) -> Vec<Value> {
        sqlx::query_scalar(
            "SELECT payload FROM structure_events
             WHERE workspace_id = $1 AND event_type = 'WORKSPACE_RESTART_REQUESTED' ORDER BY created_at",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }
}

fn names(reply: &Reply) -> Vec<String> {
    reply
        .json
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", reply.text))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_registry_lists_every_folder_with_its_manifest(db: PgPool) {
    let p = Plugins::new(db).await;
    let all = p.get("/plugins").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(names(&all), ["bare", "ecc", "hermes-only"]);
    assert_eq!(
        all.json[1],
        json!({"name":"ecc","version":"1.2.0","description":"Everything","author":"me",
               "tags":["a"],"skills":["ecc-skill"],"runtimes":["claude_code"]})
    );
    assert_eq!(
        all.json[0],
        json!({"name":"bare","version":"","description":"","author":"","tags":null,"skills":null,"runtimes":null})
    );
    assert_eq!(all.json[2]["version"], "0.1");
    // `-` and `_` are the same; plugins without runtimes match everything.
    let filtered = p.get("/plugins?runtime=claude-code").await;
    assert_eq!(names(&filtered), ["bare", "ecc"]);
    let sources = p.get("/plugins/sources").await;
    assert_eq!(sources.json, json!({"schemes": ["github", "local"]}));
    let id = p.workspace("hermes").await;
    let available = p.get(&format!("/workspaces/{id}/plugins/available")).await;
    assert_eq!(names(&available), ["bare", "hermes-only"]);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn install_writes_the_whole_plugin_lists_it_and_asks_for_a_restart(db: PgPool) {
    let p = Plugins::new(db).await;
    let id = p.workspace("claude-code").await;
    let reply = p.install(id, "ecc").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"plugin": "ecc", "source": "local://ecc", "status": "installed"})
    );
    let installed = p.configs(id).join("plugins/ecc");
    assert_eq!(
        std::fs::read_to_string(installed.join("rules/one.md")).unwrap(),
        "rule one"
    );
    assert_eq!(
        std::fs::read_to_string(installed.join("plugin.yaml")).unwrap(),
        ECC_YAML
    );
    let restarts = p.restarts(id).await;
    assert_eq!(
        restarts,
        [json!({"reason": "plugin installed", "plugin": "ecc"})]
    );
    // A plain file in /configs/plugins is not a plugin.
    std::fs::write(p.configs(id).join("plugins/stray.txt"), "x").unwrap();
    let list = p.get(&format!("/workspaces/{id}/plugins")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(names(&list), ["ecc"]);
    assert_eq!(list.json[0]["supported_on_runtime"], true);
    assert_eq!(list.json[0]["version"], "1.2.0");

    // A reinstall replaces the folder whole: files of the previous version do not survive.
    std::fs::write(installed.join("stale.md"), "old").unwrap();
    std::fs::write(p.registry().join("ecc/rules/one.md"), "rule one v2").unwrap();
    assert_eq!(p.install(id, "local://ecc").await.status, StatusCode::OK);
    assert!(!installed.join("stale.md").exists());
    assert_eq!(
        std::fs::read_to_string(installed.join("rules/one.md")).unwrap(),
        "rule one v2"
    );
    // No temporary or old siblings are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(p.configs(id).join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Compatibility splits by the target runtime.
    let compat = p
        .get(&format!(
            "/workspaces/{id}/plugins/compatibility?runtime=hermes"
        ))
        .await;
    assert_eq!(compat.json["all_compatible"], false);
    assert_eq!(compat.json["compatible"], json!([]));
    assert_eq!(compat.json["incompatible"][0]["name"], "ecc");
    assert_eq!(compat.json["target_runtime"], "hermes");
    assert!(
        compat.json["incompatible"][0]
            .get("supported_on_runtime")
            .is_none()
    );
    let missing = p
        .get(&format!("/workspaces/{id}/plugins/compatibility"))
        .await;
    assert_error(
        &missing,
        StatusCode::BAD_REQUEST,
        "runtime query parameter is required",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn uninstall_removes_the_folder_its_skills_and_rules(db: PgPool) {
    let p = Plugins::new(db).await;
    let id = p.workspace("claude-code").await;
    assert_eq!(p.install(id, "ecc").await.status, StatusCode::OK);
    // What the runtime adaptor would have done on boot.
    let configs = p.configs(id);
    std::fs::create_dir_all(configs.join("skills/ecc-skill")).unwrap();
    std::fs::write(configs.join("skills/ecc-skill/SKILL.md"), "s").unwrap();
    std::fs::create_dir_all(configs.join("skills/mine")).unwrap();
    std::fs::write(
        configs.join("CLAUDE.md"),
        "mine\n# Plugin: ecc / rule: one\nrule one\n\n\nkept\n",
    )
    .unwrap();
    let reply = send(
        &p.app,
        "DELETE",
        &format!("/workspaces/{id}/plugins/ecc"),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({"plugin": "ecc", "status": "uninstalled"})
    );
    assert!(!configs.join("plugins/ecc").exists());
    assert!(!configs.join("skills/ecc-skill").exists());
    assert!(configs.join("skills/mine").exists());
    assert_eq!(
        std::fs::read_to_string(configs.join("CLAUDE.md")).unwrap(),
        "mine\nkept\n"
    );
    assert_eq!(p.restarts(id).await.len(), 2);
    // Not installed: still 200, nothing asked.
    let again = send(
        &p.app,
        "DELETE",
        &format!("/workspaces/{id}/plugins/ecc"),
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(p.restarts(id).await.len(), 2);
    for bad in ["..", "a..b", "a%5Cb"] {
        let reply = send(
            &p.app,
            "DELETE",
            &format!("/workspaces/{id}/plugins/{bad}"),
            None,
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid plugin name");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn install_answers_the_originals_statuses_and_messages(db: PgPool) {
    let p = Plugins::new(db).await;
    let id = p.workspace("claude-code").await;
    let post = |body: &'static [u8]| {
        let app = p.app.clone();
        async move {
            crate::common::send_raw(
                &app,
                "POST",
                &format!("/workspaces/{id}/plugins"),
                body.to_vec(),
            )
            .await
        }
    };
    assert_error(
        &post(b"{").await,
        StatusCode::BAD_REQUEST,
        "invalid request body",
    );
    assert_error(
        &post(b"{}").await,
        StatusCode::BAD_REQUEST,
        "'source' is required (e.g. \"local://my-plugin\" or \"github://owner/repo\")",
    );
    assert_error(
        &p.install(id, "   ").await,
        StatusCode::BAD_REQUEST,
        "invalid plugin source",
    );
    assert_error(
        &p.install(id, "local://").await,
        StatusCode::BAD_REQUEST,
        "invalid plugin source",
    );
    let scheme = p.install(id, "ftp://x").await;
    assert_eq!(scheme.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        scheme.json,
        json!({"available_schemes": ["github", "local"], "error": "failed to resolve plugin source"})
    );
    for bad in ["owner/repo", "local://../etc", "local://My-Plugin"] {
        assert_error(
            &p.install(id, bad).await,
            StatusCode::BAD_REQUEST,
            "invalid plugin name",
        );
    }
    let missing = p.install(id, "nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json,
        json!({"error": "failed to fetch plugin from local", "source": "local://nope"})
    );
    let unpinned = p.install(id, "github://o/r").await;
    assert_eq!(unpinned.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unpinned.json["source"], "github://o/r");
    assert!(
        unpinned.json["error"]
            .as_str()
            .unwrap()
            .starts_with("unpinned github source")
    );
    assert_error(
        &p.install(id, "github://o/r#").await,
        StatusCode::BAD_REQUEST,
        "invalid plugin source",
    );
    // An unknown workspace is refused before anything is fetched.
    let unknown = p.install(Uuid::new_v4(), "ecc").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "workspace not found");
    // sha256 of plugin.yaml.
    let good = hex::encode(Sha256::digest(ECC_YAML.as_bytes()));
    let with_sha = |sha: &str| json!({"source": "ecc", "sha256": sha});
    let ok = send(
        &p.app,
        "POST",
        &format!("/workspaces/{id}/plugins"),
        Some(&with_sha(&good.to_uppercase())),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let bad = send(
        &p.app,
        "POST",
        &format!("/workspaces/{id}/plugins"),
        Some(&with_sha("00")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.json["error"],
        format!("sha256 mismatch: expected 00, got {good}")
    );
    let no_yaml = send(
        &p.app,
        "POST",
        &format!("/workspaces/{id}/plugins"),
        Some(&json!({"source": "bare", "sha256": "00"})),
    )
    .await;
    assert_eq!(
        no_yaml.json["error"],
        "sha256 check failed: plugin.yaml not found in staged plugin"
    );
}

/// The original's supply-chain digest of a folder.
fn tree_digest(root: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                if rel == "manifest.json" {
                    continue;
                }
                let mut item = rel.into_bytes();
                item.push(0);
                item.extend(std::fs::read(&path).unwrap());
                out.push(item);
            }
        }
    }
    let mut items = Vec::new();
    walk(root, root, &mut items);
    items.sort();
    hex::encode(Sha256::digest(items.concat()))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn hostile_plugins_are_refused_whole_and_nothing_is_written(db: PgPool) {
    let p = Plugins::with(db, |c| c.plugins.max_bytes = 64 * 1024).await;
    let id = p.workspace("claude-code").await;
    let registry = p.registry();
    // A symlink to a host file (the original copied its target in).
    let linked = plant(&registry, "linked", &[("plugin.yaml", "version: '1'")]);
    std::os::unix::fs::symlink("/etc/passwd", linked.join("passwd")).unwrap();
    // A symlinked directory.
    let dirlink = plant(&registry, "dirlink", &[("plugin.yaml", "x: 1")]);
    std::os::unix::fs::symlink("/etc", dirlink.join("etc")).unwrap();
    // Names no path may carry.
    plant(&registry, "backslash", &[("a\\..\\b", "x")]);
    plant(&registry, "newline", &[("a\nb", "x")]);
    // Too big (sizes are checked before anything is read).
    let big = plant(&registry, "big", &[("plugin.yaml", "x: 1")]);
    std::fs::File::create(big.join("bomb.bin"))
        .unwrap()
        .set_len(10 * 1024 * 1024 * 1024)
        .unwrap();
    // 10,000 entries.
    let many = plant(&registry, "many", &[("plugin.yaml", "x: 1")]);
    for i in 0..10_000 {
        std::fs::write(many.join(format!("f{i}")), "").unwrap();
    }
    // A manifest digest that does not match, and one that does.
    plant(
        &registry,
        "tampered",
        &[
            ("plugin.yaml", "x: 1"),
            ("manifest.json", r#"{"sha256":"abc"}"#),
        ],
    );
    plant(
        &registry,
        "badjson",
        &[("plugin.yaml", "x: 1"), ("manifest.json", "{")],
    );
    let signed = plant(
        &registry,
        "signed",
        &[("plugin.yaml", "x: 1"), ("rules/a.md", "a")],
    );
    let digest = tree_digest(&signed);
    std::fs::write(
        signed.join("manifest.json"),
        json!({"sha256": digest.to_uppercase()}).to_string(),
    )
    .unwrap();

    for (name, status, error) in [
        (
            "linked",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin contains an unsafe entry",
        ),
        (
            "dirlink",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin contains an unsafe entry",
        ),
        (
            "backslash",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin contains an unsafe entry",
        ),
        (
            "newline",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin contains an unsafe entry",
        ),
        (
            "big",
            StatusCode::PAYLOAD_TOO_LARGE,
            "staged plugin exceeds size limit",
        ),
        (
            "many",
            StatusCode::PAYLOAD_TOO_LARGE,
            "staged plugin has too many entries",
        ),
        (
            "tampered",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin manifest integrity check failed",
        ),
        (
            "badjson",
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin manifest integrity check failed",
        ),
    ] {
        let reply = p.install(id, name).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.text);
        assert_eq!(reply.json["error"], error, "{name}");
        assert_eq!(reply.json["source"], format!("local://{name}"), "{name}");
        assert!(!p.configs(id).join("plugins").join(name).exists(), "{name}");
        // The download refuses the same plugins.
        let download = p
            .get(&format!("/workspaces/{id}/plugins/{name}/download"))
            .await;
        assert_eq!(download.status, status, "{name} download");
    }
    assert!(p.restarts(id).await.is_empty());
    let reply = p.install(id, "signed").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Entries of a `.tar.gz`: (name, type flag, content).
pub fn untar(gz: &[u8]) -> Vec<(String, u8, Vec<u8>)> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut tar)
        .unwrap();
    let mut entries = Vec::new();
    let mut at = 0;
    let mut long_name: Option<String> = None;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|b| *b != 0) {
        let h = &tar[at..at + 512];
        let field = |r: std::ops::Range<usize>| {
            String::from_utf8_lossy(&h[r])
                .trim_end_matches('\0')
                .to_string()
        };
        let size = u64::from_str_radix(field(124..135).trim(), 8).unwrap() as usize;
        let kind = h[156];
        let body = tar[at + 512..at + 512 + size].to_vec();
        at += 512 + size.div_ceil(512) * 512;
        if kind == b'L' {
            long_name = Some(
                String::from_utf8_lossy(&body)
                    .trim_end_matches('\0')
                    .to_string(),
            );
            continue;
        }
        let name = long_name.take().unwrap_or_else(|| field(0..100));
        entries.push((name, kind, body));
    }
    entries
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn download_streams_a_tarball_of_the_plugin(db: PgPool) {
    let p = Plugins::new(db).await;
    let long = format!("{}/deep.md", "d".repeat(120));
    plant(&p.registry(), "ecc", &[(long.as_str(), "deep")]);
    let id = p.workspace("claude-code").await;
    let reply = crate::common::send_raw(
        &p.app,
        "GET",
        &format!("/workspaces/{id}/plugins/ecc/download"),
        Vec::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/gzip");
    assert_eq!(
        reply.headers["content-disposition"],
        "attachment; filename=\"ecc.tar.gz\""
    );
    assert_eq!(reply.headers["x-plugin-name"], "ecc");
    assert_eq!(reply.headers["x-plugin-source"], "local://ecc");
    // The body as bytes (the reply's text is lossy).
    let response = tower::ServiceExt::oneshot(
        p.app.clone(),
        axum::http::Request::get(format!("/workspaces/{id}/plugins/ecc/download"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let entries = untar(&bytes);
    let files: Vec<(&str, &[u8])> = entries
        .iter()
        .filter(|e| e.1 == b'0')
        .map(|e| (e.0.as_str(), e.2.as_slice()))
        .collect();
    assert!(
        files.contains(&("plugin.yaml", ECC_YAML.as_bytes())),
        "{files:?}"
    );
    assert!(files.contains(&("rules/one.md", b"rule one".as_slice())));
    assert!(files.contains(&(long.as_str(), b"deep".as_slice())));
    assert!(entries.iter().any(|e| e.0 == "rules/" && e.1 == b'5'));
    // A source resolving to another name.
    let other = p
        .get(&format!(
            "/workspaces/{id}/plugins/bare/download?source=local://ecc"
        ))
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        other.json,
        json!({"error": "source resolved to plugin \"ecc\" but URL requested \"bare\"",
               "requested_name": "bare", "resolved_name": "ecc"})
    );
    let missing = p
        .get(&format!("/workspaces/{id}/plugins/nope/download"))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_org_allowlist_governs_installs_in_the_whole_tree(db: PgPool) {
    let p = Plugins::new(db.clone()).await;
    let root = insert_child_workspace(&db, "org-root", None).await;
    let child = insert_child_workspace(&db, "team", Some(root)).await;
    let grandchild = insert_child_workspace(&db, "member", Some(child)).await;
    let uri = format!("/orgs/{root}/plugins/allowlist");
    let empty = p.get(&uri).await;
    assert_eq!(
        empty.json,
        json!({"allow_all": true, "org_id": root.to_string(), "plugins": []})
    );
    let put = |body: Value| {
        let app = p.app.clone();
        let uri = uri.clone();
        async move { send(&app, "PUT", &uri, Some(&body)).await }
    };
    assert_error(
        &put(json!({"plugins": ["ecc"]})).await,
        StatusCode::BAD_REQUEST,
        "enabled_by is required",
    );
    let bad = put(json!({"plugins": ["../x"], "enabled_by": "ops"})).await;
    assert_eq!(
        bad.json,
        json!({"detail": "invalid plugin name: must not contain path separators or '..'",
               "error": "invalid plugin name", "plugin_name": "../x"})
    );
    let set = put(json!({"plugins": ["ecc", "bare", "ecc"], "enabled_by": "ops"})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(
        set.json,
        json!({"allow_all": false, "org_id": root.to_string(), "plugins": ["bare", "ecc"]})
    );
    let listed = p.get(&uri).await;
    assert_eq!(listed.json["plugins"][0]["plugin_name"], "bare");
    assert_eq!(listed.json["plugins"][1]["enabled_by"], "ops");
    assert!(
        listed.json["plugins"][1]["enabled_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    for id in [root, child, grandchild] {
        let refused = p.install(id, "hermes-only").await;
        assert_error(
            &refused,
            StatusCode::FORBIDDEN,
            "plugin \"hermes-only\" is not in the org allowlist",
        );
        assert_eq!(p.install(id, "ecc").await.status, StatusCode::OK);
    }
    // A workspace of another tree is not governed by it.
    let other = insert_child_workspace(&db, "elsewhere", None).await;
    assert_eq!(p.install(other, "hermes-only").await.status, StatusCode::OK);
    // Clearing allows all again.
    let cleared = put(json!({"enabled_by": "ops"})).await;
    assert_eq!(cleared.json["allow_all"], true);
    assert_eq!(cleared.json["plugins"], json!([]));
    assert_eq!(
        p.install(grandchild, "hermes-only").await.status,
        StatusCode::OK
    );
    // Unknown and malformed orgs.
    assert_error(
        &p.get(&format!("/orgs/{}/plugins/allowlist", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "org not found",
    );
    assert_error(
        &p.get("/orgs/not-a-uuid/plugins/allowlist").await,
        StatusCode::BAD_REQUEST,
        "invalid org ID",
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_org_token_manages_only_its_own_orgs_allowlist(db: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.molecule_env = "production".into();
    config.admin_token = Some("admin-secret".to_string().into());
    let app = app(test_state(db.clone(), config));
    let mine = insert_child_workspace(&db, "mine", None).await;
    let theirs = insert_child_workspace(&db, "theirs", None).await;
    let token = store::tokens::mint_org_token(&db, "t", Some(mine))
        .await
        .unwrap();
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let own = send_with(
        &app,
        "GET",
        &format!("/orgs/{mine}/plugins/allowlist"),
        &auth,
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    for org in [theirs, Uuid::new_v4()] {
        let other = send_with(
            &app,
            "GET",
            &format!("/orgs/{org}/plugins/allowlist"),
            &auth,
            None,
        )
        .await;
        assert_error(&other, StatusCode::FORBIDDEN, "org access denied");
    }
    let anonymous = send(
        &app,
        "GET",
        &format!("/orgs/{mine}/plugins/allowlist"),
        None,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

/// A bare repository `<base>/owner/<repo>.git` with one commit tagged `v1` on `main`.
pub fn bare_repo(base: &Path, repo: &str, files: &[(&str, &str)]) -> String {
    let work = base.join(format!("work-{repo}"));
    std::fs::create_dir_all(&work).unwrap();
    for (path, content) in files {
        let target = work.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "plugin"]);
    git(&work, &["tag", "v1"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let bare = base.join("owner").join(format!("{repo}.git"));
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(
        base,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    sha
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn github_sources_are_cloned_at_their_pinned_ref(db: PgPool) {
    let remote = tempfile::tempdir().unwrap();
    let base = format!("file://{}", remote.path().display());
    let p = Plugins::with(db, |c| c.plugins.github_base_url = base).await;
    let sha = bare_repo(
        remote.path(),
        "molecule-ai-plugin-demo",
        &[("plugin.yaml", "version: '2'\n"), ("rules/r.md", "r")],
    );
    let id = p.workspace("claude-code").await;
    let tag = p
        .install(id, "github://owner/molecule-ai-plugin-demo#v1")
        .await;
    assert_eq!(tag.status, StatusCode::OK, "{}", tag.text);
    assert_eq!(
        tag.json,
        json!({"plugin": "molecule-ai-plugin-demo", "source": "github://owner/molecule-ai-plugin-demo#v1", "status": "installed"})
    );
    let installed = p.configs(id).join("plugins/molecule-ai-plugin-demo");
    assert_eq!(
        std::fs::read_to_string(installed.join("rules/r.md")).unwrap(),
        "r"
    );
    assert!(!installed.join(".git").exists());
    // A branch and a full commit SHA work too.
    assert_eq!(
        p.install(id, "github://owner/molecule-ai-plugin-demo#main")
            .await
            .status,
        StatusCode::OK
    );
    let by_sha = p
        .install(id, &format!("github://owner/molecule-ai-plugin-demo#{sha}"))
        .await;
    assert_eq!(by_sha.status, StatusCode::OK, "{}", by_sha.text);
    // Missing ref, missing repository: 404 with the original's body.
    for source in [
        "github://owner/molecule-ai-plugin-demo#v9",
        "github://owner/absent#v1",
    ] {
        let reply = p.install(id, source).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{source}: {}",
            reply.text
        );
        assert_eq!(
            reply.json,
            json!({"error": "failed to fetch plugin from github", "source": source})
        );
    }
    // A repository carrying a symlink to a host file is refused whole.
    let work = remote.path().join("work-linked");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.join("passwd")).unwrap();
    bare_repo(remote.path(), "linked", &[("plugin.yaml", "x: 1\n")]);
    let linked = p.install(id, "github://owner/linked#v1").await;
    assert_eq!(
        linked.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        linked.text
    );
    assert_eq!(linked.json["error"], "plugin contains an unsafe entry");
    assert_eq!(linked.json["path"], "passwd");
    assert!(!p.configs(id).join("plugins/linked").exists());
    // The download of a github plugin is named after the repository.
    let download = p
        .get(&format!("/workspaces/{id}/plugins/molecule-ai-plugin-demo/download?source=github://owner/molecule-ai-plugin-demo%23v1"))
        .await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.text);
}
