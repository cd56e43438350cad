//! The store functions behind the metadata API, against real PostgreSQL: token hashing and
//! lookup rules, secrets compatibility, and the typed sibling-name/parent errors.

use sqlx::PgPool;
use store::StoreError;
use store::crypto::Crypto;
use store::workspaces::{NewWorkspace, WorkspacePatch};
use uuid::Uuid;

fn new_workspace(name: &str, parent_id: Option<Uuid>) -> NewWorkspace<'_> {
    NewWorkspace {
        id: Uuid::new_v4(),
        name,
        role: None,
        tier: 3,
        runtime: "langgraph",
        status: "provisioning",
        url: None,
        parent_id,
        workspace_dir: None,
        workspace_access: "none",
        budget_limit: None,
        max_concurrent_tasks: 1,
        delivery_mode: "push",
    }
}

async fn insert(db: &PgPool, name: &str, parent_id: Option<Uuid>) -> Uuid {
    let new = new_workspace(name, parent_id);
    store::workspaces::insert(db, &new).await.unwrap();
    new.id
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn tokens_are_stored_hashed_and_scoped(db: PgPool) {
    let id = insert(&db, "a", None).await;
    let token = store::tokens::mint_workspace_token(&db, id).await.unwrap();
    assert_eq!(token.len(), 43);
    let (hash, prefix): (Vec<u8>, String) =
        sqlx::query_as("SELECT token_hash, prefix FROM workspace_auth_tokens")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(hash.len(), 32);
    assert_ne!(hash, token.as_bytes());
    assert_eq!(prefix, token[..8]);
    assert_eq!(
        store::tokens::workspace_of_token(&db, &token)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        store::tokens::workspace_of_token(&db, "").await.unwrap(),
        None
    );
    assert_eq!(
        store::tokens::workspace_of_token(&db, "wrong")
            .await
            .unwrap(),
        None
    );
    assert!(store::tokens::any_live_token(&db).await.unwrap());

    store::workspaces::set_status(&db, id, "removed")
        .await
        .unwrap();
    assert_eq!(
        store::tokens::workspace_of_token(&db, &token)
            .await
            .unwrap(),
        None,
        "removed workspace"
    );
    store::workspaces::set_status(&db, id, "online")
        .await
        .unwrap();
    assert_eq!(
        store::tokens::revoke_for_workspaces(&db, &[id])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store::tokens::workspace_of_token(&db, &token)
            .await
            .unwrap(),
        None,
        "revoked"
    );
    assert!(!store::tokens::any_live_token(&db).await.unwrap());

    let org = store::tokens::mint_org_token(&db, "ci", Some(id))
        .await
        .unwrap();
    let found = store::tokens::validate_org_token(&db, &org)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.org_id, found.prefix.as_str()), (Some(id), &org[..8]));
    assert_eq!(
        store::tokens::validate_org_token(&db, &token)
            .await
            .unwrap(),
        None
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn secrets_round_trip_with_and_without_a_key(db: PgPool) {
    let id = insert(&db, "s", None).await;
    let plain = Crypto::disabled();
    store::secrets::upsert(&db, &plain, id, "A", "one")
        .await
        .unwrap();
    let keyed = Crypto::from_key(&[3u8; 32]);
    store::secrets::upsert(&db, &keyed, id, "B", "two")
        .await
        .unwrap();
    // Version-0 rows stay readable once a key exists.
    assert_eq!(
        store::secrets::get(&db, &keyed, id, "A")
            .await
            .unwrap()
            .as_deref(),
        Some("one")
    );
    assert_eq!(
        store::secrets::get(&db, &keyed, id, "B")
            .await
            .unwrap()
            .as_deref(),
        Some("two")
    );
    assert!(matches!(
        store::secrets::get(&db, &plain, id, "B").await,
        Err(StoreError::Crypto(_))
    ));
    store::secrets::upsert(&db, &keyed, id, "B", "three")
        .await
        .unwrap();
    assert_eq!(
        store::secrets::get(&db, &keyed, id, "B")
            .await
            .unwrap()
            .as_deref(),
        Some("three")
    );
    assert!(store::secrets::delete(&db, id, "B").await.unwrap());
    assert_eq!(
        store::secrets::get(&db, &keyed, id, "B").await.unwrap(),
        None
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sibling_names_and_parents_map_to_typed_errors(db: PgPool) {
    let root = insert(&db, "root", None).await;
    let clash = store::workspaces::insert(&db, &new_workspace("root", None)).await;
    assert!(matches!(clash, Err(StoreError::DuplicateWorkspaceName)));
    let orphan = store::workspaces::insert(&db, &new_workspace("x", Some(Uuid::new_v4()))).await;
    assert!(matches!(orphan, Err(StoreError::ParentNotFound)));
    let child = insert(&db, "root", Some(root)).await;
    let rename = WorkspacePatch {
        name: Some("child".into()),
        ..Default::default()
    };
    store::workspaces::update(&db, child, &rename)
        .await
        .unwrap();
    let other = insert(&db, "other", Some(root)).await;
    let clash = store::workspaces::update(&db, other, &rename).await;
    assert!(matches!(clash, Err(StoreError::DuplicateWorkspaceName)));
    let reparent = WorkspacePatch {
        parent_id: Some(Some(Uuid::new_v4())),
        ..Default::default()
    };
    assert!(matches!(
        store::workspaces::update(&db, other, &reparent).await,
        Err(StoreError::ParentNotFound)
    ));
    assert!(matches!(
        store::workspaces::update(&db, Uuid::new_v4(), &rename).await,
        Err(StoreError::NotFound)
    ));
    let grandchild = insert(&db, "g", Some(child)).await;
    let mut descendants = store::workspaces::live_descendants(&db, root)
        .await
        .unwrap();
    descendants.sort();
    let mut expected = vec![child, other, grandchild];
    expected.sort();
    assert_eq!(descendants, expected);
}

/// `last_used_at` of a used token is written at most once a minute, so a busy token's requests
/// stay reads; one bearer check answers org token, owner and the workspace's live token at once.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn token_use_is_stamped_at_most_once_a_minute_and_checked_in_one_go(db: PgPool) {
    let id = insert(&db, "a", None).await;
    let other = insert(&db, "b", None).await;
    let token = store::tokens::mint_workspace_token(&db, id).await.unwrap();
    let org = store::tokens::mint_org_token(&db, "ci", None)
        .await
        .unwrap();
    let stamp = |table: &'static str| {
        let db = db.clone();
        async move {
            let query = match table {
                "org_api_tokens" => "SELECT max(last_used_at) FROM org_api_tokens",
                _ => "SELECT max(last_used_at) FROM workspace_auth_tokens",
            };
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(query)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    assert_eq!(
        store::tokens::workspace_of_token(&db, &token)
            .await
            .unwrap(),
        Some(id)
    );
    let first = stamp("workspace_auth_tokens")
        .await
        .expect("first use stamped");
    store::tokens::workspace_of_token(&db, &token)
        .await
        .unwrap();
    assert_eq!(
        stamp("workspace_auth_tokens").await,
        Some(first),
        "a use within the minute writes nothing"
    );
    sqlx::query("UPDATE workspace_auth_tokens SET last_used_at = now() - interval '2 minutes'")
        .execute(&db)
        .await
        .unwrap();
    store::tokens::workspace_of_token(&db, &token)
        .await
        .unwrap();
    assert!(stamp("workspace_auth_tokens").await > Some(first - chrono::Duration::seconds(1)));

    assert!(
        store::tokens::validate_org_token(&db, &org)
            .await
            .unwrap()
            .is_some()
    );
    let org_first = stamp("org_api_tokens").await.expect("org token stamped");
    store::tokens::validate_org_token(&db, &org).await.unwrap();
    assert_eq!(stamp("org_api_tokens").await, Some(org_first));

    let lane = store::Db::from(db.clone());
    let own = store::tokens::check_bearer(&lane, &token, Some(id))
        .await
        .unwrap();
    assert_eq!(
        (own.org, own.owner, own.workspace_has_live_token),
        (None, Some(id), true)
    );
    let as_org = store::tokens::check_bearer(&lane, &org, Some(other))
        .await
        .unwrap();
    assert!(as_org.org.is_some());
    assert_eq!(
        (as_org.owner, as_org.workspace_has_live_token),
        (None, false)
    );
    let nobody = store::tokens::check_bearer(&lane, "", None).await.unwrap();
    assert_eq!(
        (nobody.org, nobody.owner, nobody.workspace_has_live_token),
        (None, None, false)
    );
    store::tokens::revoke_for_workspaces(&db, &[id])
        .await
        .unwrap();
    let revoked = store::tokens::check_bearer(&lane, &token, Some(id))
        .await
        .unwrap();
    assert_eq!(
        (revoked.owner, revoked.workspace_has_live_token),
        (None, false)
    );
}

/// Concurrent checks of one bearer share statements, but never one that started before the
/// check was asked: a revocation fails every check that follows it, while earlier checks of the
/// same token are still in flight.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_shared_bearer_check_never_answers_from_before_a_revocation(db: PgPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let id = insert(&db, "a", None).await;
    let token = store::tokens::mint_workspace_token(&db, id).await.unwrap();
    let lane = store::Db::new(db.clone(), 4);
    let stop = Arc::new(AtomicBool::new(false));
    let before = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (lane, token, stop, before) =
                (lane.clone(), token.clone(), stop.clone(), before.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let check = store::tokens::check_bearer(&lane, &token, Some(id)).await;
                    if check.unwrap().owner == Some(id) {
                        before.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    while before.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    store::tokens::revoke_for_workspaces(&db, &[id])
        .await
        .unwrap();
    for _ in 0..50 {
        let after = store::tokens::check_bearer(&lane, &token, Some(id))
            .await
            .unwrap();
        assert_eq!((after.owner, after.workspace_has_live_token), (None, false));
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
}

/// Concurrent reads of different workspaces share statements: each caller gets its own row (or
/// none for an unknown id), and a rename is seen by every read asked after it, while reads of
/// other workspaces keep the statements busy.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn batched_workspace_reads_answer_each_caller_and_see_completed_writes(db: PgPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut ids = Vec::new();
    for n in 0..24 {
        ids.push(insert(&db, &format!("w{n}"), None).await);
    }
    // The batch statement (an array of ids) answers each row as the one-key statement does.
    let mut asked = ids.clone();
    asked.push(Uuid::new_v4());
    let mut many = store::workspaces::get_many(&db, &asked).await.unwrap();
    many.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
    let mut one_by_one = Vec::new();
    for &id in &ids {
        one_by_one.push(store::workspaces::get(&db, id).await.unwrap().unwrap());
    }
    assert_eq!(many, one_by_one);
    let lane = store::Db::new(db.clone(), 4);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..32)
        .map(|reader| {
            let (lane, ids, stop) = (lane.clone(), ids.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads == 0 {
                    let n = (reader + reads) % (ids.len() + 1);
                    let Some(&id) = ids.get(n) else {
                        let unknown = store::workspaces::get_shared(&lane, Uuid::new_v4()).await;
                        assert_eq!(unknown.unwrap(), None);
                        reads += 1;
                        continue;
                    };
                    let row = store::workspaces::get_shared(&lane, id).await.unwrap();
                    let row = row.expect("an existing workspace");
                    assert_eq!(row.id, id);
                    if n != 0 {
                        assert_eq!(row.name, format!("w{n}"));
                    }
                    reads += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for round in 0..20 {
        let rename = WorkspacePatch {
            name: Some(format!("renamed-{round}")),
            ..Default::default()
        };
        store::workspaces::update(&db, ids[0], &rename)
            .await
            .unwrap();
        let row = store::workspaces::get_shared(&lane, ids[0]).await.unwrap();
        assert_eq!(row.unwrap().name, format!("renamed-{round}"));
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
}

/// Concurrent reads of different workspaces' sealed secrets share statements: each gets every
/// global row first, then its own rows, and none of another workspace's.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn batched_sealed_secrets_give_each_workspace_its_own(db: PgPool) {
    use store::secret_scopes::{Scope, sealed_for_workspace, upsert_global};

    let plain = Crypto::disabled();
    upsert_global(&db, &plain, "G1", "g1").await.unwrap();
    upsert_global(&db, &plain, "G2", "g2").await.unwrap();
    let mut ids = Vec::new();
    for n in 0..12 {
        let id = insert(&db, &format!("s{n}"), None).await;
        // Workspace n has n % 3 secrets of its own; the first overrides G1.
        for k in 0..(n % 3) {
            let key = if k == 0 {
                "G1".to_owned()
            } else {
                format!("W{n}")
            };
            store::secrets::upsert(&db, &plain, id, &key, &format!("w{n}"))
                .await
                .unwrap();
        }
        ids.push(id);
    }
    let lane = store::Db::new(db.clone(), 4);
    let reads = ids.iter().cycle().take(96).map(|&id| {
        let lane = lane.clone();
        tokio::spawn(async move { (id, sealed_for_workspace(&lane, id).await.unwrap()) })
    });
    for read in futures_util::future::join_all(reads).await {
        let (id, sealed) = read.unwrap();
        let n = ids.iter().position(|&other| other == id).unwrap();
        let keys: Vec<(&str, Scope)> = sealed.iter().map(|s| (s.key.as_str(), s.scope)).collect();
        let mut expected = vec![("G1", Scope::Global), ("G2", Scope::Global)];
        let own = format!("W{n}");
        if n % 3 >= 1 {
            expected.push(("G1", Scope::Workspace));
        }
        if n % 3 == 2 {
            expected.push((own.as_str(), Scope::Workspace));
        }
        assert_eq!(keys, expected, "workspace {n}");
    }
}

/// Concurrent checks of different bearers share statements: each gets its own token's owner and
/// the asked workspace's live-token flag, an unknown bearer gets nothing, and every token used is
/// stamped, at most once a minute.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn batched_bearer_checks_answer_each_bearer(db: PgPool) {
    let mut owners = Vec::new();
    for n in 0..8 {
        let id = insert(&db, &format!("b{n}"), None).await;
        let token = store::tokens::mint_workspace_token(&db, id).await.unwrap();
        owners.push((id, token));
    }
    let tokenless = insert(&db, "tokenless", None).await;
    let lane = store::Db::new(db.clone(), 4);
    let checks = (0..64).map(|i| {
        let (lane, owners) = (lane.clone(), owners.clone());
        tokio::spawn(async move {
            let (owner, token) = &owners[i % owners.len()];
            let asked = match i % 3 {
                0 => Some(owners[(i + 1) % owners.len()].0),
                1 => Some(tokenless),
                _ => None,
            };
            let bearer = if i % 7 == 0 {
                "unknown"
            } else {
                token.as_str()
            };
            let check = store::tokens::check_bearer(&lane, bearer, asked)
                .await
                .unwrap();
            let expected_owner = (i % 7 != 0).then_some(*owner);
            assert_eq!(check.owner, expected_owner, "check {i}");
            assert_eq!(check.workspace_has_live_token, i % 3 == 0, "check {i}");
            assert_eq!(check.org, None);
        })
    });
    for check in futures_util::future::join_all(checks).await {
        check.unwrap();
    }
    let stamps = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT last_used_at FROM workspace_auth_tokens ORDER BY id",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    let first = stamps().await;
    assert!(
        first.iter().all(Option::is_some),
        "every token used is stamped"
    );
    let check_all = || {
        let checks = owners.iter().map(|(id, token)| {
            let lane = lane.clone();
            let (id, token) = (*id, token.clone());
            async move { store::tokens::check_bearer(&lane, &token, Some(id)).await }
        });
        futures_util::future::join_all(checks)
    };
    for check in check_all().await {
        assert!(check.unwrap().owner.is_some());
    }
    assert_eq!(
        stamps().await,
        first,
        "a use within the minute writes nothing"
    );
    sqlx::query("UPDATE workspace_auth_tokens SET last_used_at = now() - interval '2 minutes'")
        .execute(&db)
        .await
        .unwrap();
    check_all().await;
    let aged = chrono::Utc::now() - chrono::Duration::seconds(60);
    assert!(
        stamps().await.iter().all(|stamp| stamp.unwrap() > aged),
        "a due stamp is written"
    );
}
