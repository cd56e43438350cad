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
