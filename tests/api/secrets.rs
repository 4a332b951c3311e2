//! Workspace and global secrets: the API, what is stored, the bundle, key rotation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use canopy::secrets::rotation::{rotate_all, rotate_batch, Cursor};
use canopy::secrets::{workspace_bundle, BundleError, CryptoError, Keyring, MasterKey};
use canopy::store::schema::{global_secrets as globals, workspace_secrets as ws};
use canopy::store::sql_types::DbUuid;
use canopy::store::{Store, StoreError};
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// A fresh master key: base64 of 32 random bytes.
fn new_key() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

fn master(key: &str) -> MasterKey {
    MasterKey::from_base64(key).unwrap()
}

fn keyring(current: &str, previous: Option<&str>) -> Keyring {
    Keyring::new(master(current), previous.map(master))
}

async fn spawn_with_key(db: &TestDb, key: &str) -> TestApp {
    spawn_on(
        db,
        TestOptions::default().var("SECRETS_ENCRYPTION_KEY", key),
    )
    .await
}

async fn put_secret(app: &TestApp, path: &str, key: &str, value: &str) {
    let (status, body) = app.put(path, json!({ "key": key, "value": value })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "status": "saved", "key": key }));
}

/// `(key, scope)` of each listed secret, checking every entry's shape on the way.
fn keys_and_scopes(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut fields: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
            fields.sort();
            assert_eq!(
                fields,
                ["created_at", "has_value", "key", "scope", "updated_at"],
                "no value is ever listed: {s}"
            );
            assert_eq!(s["has_value"], true);
            assert!(s["created_at"].as_str().unwrap().ends_with('Z'));
            (
                s["key"].as_str().unwrap().to_string(),
                s["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn bundle(
    store: &Store,
    keyring: &Keyring,
    workspace: &str,
) -> Result<Vec<(String, String)>, BundleError> {
    let id = Uuid::parse_str(workspace).unwrap();
    Ok(workspace_bundle(store, keyring, id)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.expose_str().unwrap().to_string()))
        .collect())
}

/// `(key, encrypted_value, wrapped_key, key_id)` of every stored secret, both tables.
type RawRow = (String, Vec<u8>, Vec<u8>, String);

async fn raw_rows(store: &Store) -> Vec<RawRow> {
    store
        .run(|c| {
            let mut rows: Vec<RawRow> = ws::table
                .select((ws::key, ws::encrypted_value, ws::wrapped_key, ws::key_id))
                .load(c)?;
            rows.extend(
                globals::table
                    .select((
                        globals::key,
                        globals::encrypted_value,
                        globals::wrapped_key,
                        globals::key_id,
                    ))
                    .load::<RawRow>(c)?,
            );
            Ok::<_, StoreError>(rows)
        })
        .await
        .unwrap()
}

async fn key_ids(store: &Store) -> Vec<String> {
    let mut ids: Vec<String> = raw_rows(store).await.into_iter().map(|r| r.3).collect();
    ids.sort();
    ids
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn workspace_secrets_crud_and_merged_listing() {
    let db = TestDb::new();
    let key = new_key();
    let app = spawn_with_key(&db, &key).await;
    let id = app.create_workspace("Research", None).await;
    let path = format!("/workspaces/{id}/secrets");

    let (status, list) = app.get(&path).await;
    assert_eq!((status, list), (200, json!([])));

    put_secret(&app, "/settings/secrets", "SHARED", "global shared").await;
    put_secret(&app, "/settings/secrets", "ONLY_GLOBAL", "global only").await;
    // POST and PUT on the collection, PUT on the key.
    let (status, body) = app
        .post(
            &path,
            json!({ "key": "SHARED", "value": "workspace shared" }),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "saved", "key": "SHARED" }))
    );
    put_secret(&app, &path, "b_own", "first").await;
    let (status, body) = app
        .put(&format!("{path}/b_own"), json!({ "value": "second" }))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "saved", "key": "b_own" }))
    );

    let (status, list) = app.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys_and_scopes(&list),
        pairs(&[
            ("ONLY_GLOBAL", "global"),
            ("SHARED", "workspace"),
            ("b_own", "workspace")
        ]),
        "sorted by key; the workspace secret overrides the global one"
    );
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let own = &list[2];
    assert!(time(&own["updated_at"]) > time(&own["created_at"]), "{own}");
    // Another workspace sees only the globals.
    let other = app.create_workspace("Other", None).await;
    let (_, list) = app.get(&format!("/workspaces/{other}/secrets")).await;
    assert_eq!(
        keys_and_scopes(&list),
        pairs(&[("ONLY_GLOBAL", "global"), ("SHARED", "global")])
    );

    let keyring = keyring(&key, None);
    assert_eq!(
        bundle(&app.state.store, &keyring, &id).await.unwrap(),
        pairs(&[
            ("ONLY_GLOBAL", "global only"),
            ("SHARED", "workspace shared"),
            ("b_own", "second"),
        ])
    );

    let (status, body) = app.delete(&format!("{path}/SHARED")).await;
    assert_eq!((status, body), (200, json!({ "status": "deleted" })));
    let (status, body) = app.delete(&format!("{path}/SHARED")).await;
    assert_eq!(
        (status, body),
        (404, json!({ "error": "secret not found" }))
    );
    let (_, list) = app.get(&path).await;
    assert_eq!(
        keys_and_scopes(&list),
        pairs(&[
            ("ONLY_GLOBAL", "global"),
            ("SHARED", "global"),
            ("b_own", "workspace")
        ]),
        "the global shows through once the override is gone"
    );
    assert_eq!(
        bundle(&app.state.store, &keyring, &id).await.unwrap()[1],
        ("SHARED".to_string(), "global shared".to_string())
    );
    // Secrets produce no events.
    assert!(app
        .live_events()
        .await
        .iter()
        .all(|e| e.1 == "WORKSPACE_PROVISIONING"));
}

#[tokio::test]
async fn global_secrets_crud() {
    let db = TestDb::new();
    let app = spawn_with_key(&db, &new_key()).await;
    let (status, list) = app.get("/settings/secrets").await;
    assert_eq!((status, list), (200, json!([])));

    let (status, body) = app
        .post("/settings/secrets", json!({ "key": "Z_KEY", "value": "z" }))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "saved", "key": "Z_KEY" }))
    );
    let (status, _) = app
        .put("/settings/secrets/A_KEY", json!({ "value": "a" }))
        .await;
    assert_eq!(status, 200);
    put_secret(&app, "/settings/secrets", "A_KEY", "a again").await;
    let (status, list) = app.get("/settings/secrets").await;
    assert_eq!(status, 200);
    assert_eq!(
        keys_and_scopes(&list),
        pairs(&[("A_KEY", "global"), ("Z_KEY", "global")])
    );

    let (status, body) = app.delete("/settings/secrets/A_KEY").await;
    assert_eq!((status, body), (200, json!({ "status": "deleted" })));
    let (status, body) = app.delete("/settings/secrets/A_KEY").await;
    assert_eq!(
        (status, body),
        (404, json!({ "error": "secret not found" }))
    );
    let (_, list) = app.get("/settings/secrets").await;
    assert_eq!(keys_and_scopes(&list), pairs(&[("Z_KEY", "global")]));
}

#[tokio::test]
async fn secret_keys_and_values_are_validated() {
    let db = TestDb::new();
    let app = spawn_with_key(&db, &new_key()).await;
    let id = app.create_workspace("Research", None).await;
    let big = "x".repeat(64 * 1024 + 1);
    let max = "x".repeat(64 * 1024);
    let long_key = "K".repeat(129);
    let cases = [
        (json!({ "value": "v" }), "key: is required"),
        (json!({ "key": "", "value": "v" }), "key: is required"),
        (
            json!({ "key": "1ABC", "value": "v" }),
            "key: must match [A-Za-z_][A-Za-z0-9_]{0,127}",
        ),
        (
            json!({ "key": "A-B", "value": "v" }),
            "key: must match [A-Za-z_][A-Za-z0-9_]{0,127}",
        ),
        (
            json!({ "key": long_key, "value": "v" }),
            "key: must match [A-Za-z_][A-Za-z0-9_]{0,127}",
        ),
        (json!({ "key": "K" }), "value: is required"),
        (
            json!({ "key": "K", "value": "" }),
            "value: must not be empty",
        ),
        (
            json!({ "key": "K", "value": big }),
            "value: must be at most 65536 bytes",
        ),
    ];
    for base in [
        format!("/workspaces/{id}/secrets"),
        "/settings/secrets".into(),
    ] {
        for (body, message) in &cases {
            let (status, got) = app.post(&base, body.clone()).await;
            assert_eq!((status, got), (400, json!({ "error": message })), "{base}");
        }
        // Errors never quote the value back, whatever its type.
        let (status, got) = app
            .put(&base, json!({ "key": "K", "value": 987654321 }))
            .await;
        assert_eq!(
            (status, got),
            (400, json!({ "error": "value: must be a string" }))
        );
        let (status, got) = app.put(&base, json!("hunter2-secret")).await;
        assert_eq!(
            (status, got),
            (
                400,
                json!({ "error": "request body must be a JSON object" })
            )
        );
        let (status, got) = app
            .put(&format!("{base}/bad-key"), json!({ "value": "v" }))
            .await;
        assert_eq!(status, 400);
        assert!(got["error"].as_str().unwrap().starts_with("key:"), "{got}");
        let (status, got) = app
            .put(
                &format!("{base}/GOOD"),
                json!({ "key": "OTHER", "value": "v" }),
            )
            .await;
        assert_eq!(
            (status, got),
            (
                400,
                json!({ "error": "key: does not match the key in the path" })
            )
        );
        let (status, got) = app.delete(&format!("{base}/bad-key")).await;
        assert_eq!(status, 400);
        assert!(got["error"].as_str().unwrap().starts_with("key:"), "{got}");

        // The limits themselves are allowed.
        let (status, _) = app
            .post(&base, json!({ "key": "K".repeat(128), "value": max }))
            .await;
        assert_eq!(status, 200);
        let (status, _) = app.post(&base, json!({ "key": "_", "value": "x" })).await;
        assert_eq!(status, 200);
    }
    assert_eq!(raw_rows(&app.state.store).await.len(), 4);
}

#[tokio::test]
async fn unknown_or_removed_workspaces_are_404() {
    let db = TestDb::new();
    let app = spawn_with_key(&db, &new_key()).await;
    let not_found = json!({ "error": "workspace not found" });
    let removed = app.create_workspace("Gone", None).await;
    let (status, _) = app.delete(&format!("/workspaces/{removed}")).await;
    assert_eq!(status, 200);
    for id in [Uuid::new_v4().to_string(), removed] {
        let path = format!("/workspaces/{id}/secrets");
        assert_eq!(app.get(&path).await, (404, not_found.clone()));
        assert_eq!(
            app.post(&path, json!({ "key": "K", "value": "v" })).await,
            (404, not_found.clone())
        );
        assert_eq!(
            app.put(&format!("{path}/K"), json!({ "value": "v" })).await,
            (404, not_found.clone())
        );
        assert_eq!(
            app.delete(&format!("{path}/K")).await,
            (404, not_found.clone())
        );
    }
    let (status, body) = app.get("/workspaces/nope/secrets").await;
    assert_eq!(
        (status, body),
        (400, json!({ "error": "invalid workspace ID" }))
    );
    assert!(raw_rows(&app.state.store).await.is_empty());
}

#[tokio::test]
async fn without_a_master_key_writes_are_503_and_nothing_is_stored() {
    let db = TestDb::new();
    let app = spawn_on(&db, TestOptions::default()).await;
    assert!(app.state.secrets.keyring().is_none());
    let id = app.create_workspace("Research", None).await;
    let disabled = json!({
        "error": "secrets are disabled: set SECRETS_ENCRYPTION_KEY (base64 of 32 bytes)"
    });
    let path = format!("/workspaces/{id}/secrets");
    let body = json!({ "key": "K", "value": "plaintext-never-stored" });
    assert_eq!(app.post(&path, body.clone()).await, (503, disabled.clone()));
    assert_eq!(app.put(&path, body.clone()).await, (503, disabled.clone()));
    assert_eq!(
        app.put(&format!("{path}/K"), json!({ "value": "v" })).await,
        (503, disabled.clone())
    );
    assert_eq!(
        app.post("/settings/secrets", body.clone()).await,
        (503, disabled.clone())
    );
    assert_eq!(
        app.put("/settings/secrets/K", json!({ "value": "v" }))
            .await,
        (503, disabled.clone())
    );
    // Deleting needs no key (there is nothing to delete here).
    assert_eq!(
        app.delete(&format!("{path}/K")).await,
        (404, json!({ "error": "secret not found" }))
    );
    // Listing still works; there is nothing to list.
    assert_eq!(app.get(&path).await, (200, json!([])));
    assert_eq!(app.get("/settings/secrets").await, (200, json!([])));
    assert!(raw_rows(&db.store()).await.is_empty());
}

#[tokio::test]
async fn stored_rows_hold_neither_plaintext_nor_data_key_and_carry_the_key_id() {
    let db = TestDb::new();
    let key = new_key();
    let app = spawn_with_key(&db, &key).await;
    let id = app.create_workspace("Research", None).await;
    let plaintext = "sk-live-correct-horse-battery-staple";
    put_secret(
        &app,
        &format!("/workspaces/{id}/secrets"),
        "API_KEY",
        plaintext,
    )
    .await;
    put_secret(&app, "/settings/secrets", "API_KEY", plaintext).await;

    let rows = raw_rows(&db.store()).await;
    assert_eq!(rows.len(), 2);
    let master_id = master(&key).key_id().to_string();
    for (name, encrypted_value, wrapped_key, key_id) in &rows {
        assert_eq!(name, "API_KEY");
        assert_eq!(key_id, &master_id);
        for stored in [encrypted_value, wrapped_key] {
            assert!(!contains(stored, plaintext.as_bytes()));
            assert!(!contains(stored, key.as_bytes()));
        }
        // nonce || AES-256-GCM(master, 32-byte data key) || tag: the data key only ever
        // appears wrapped.
        assert_eq!(wrapped_key.len(), 12 + 32 + 16);
    }
    assert_ne!(rows[0].1, rows[1].1, "a fresh data key and nonce per value");
    assert_ne!(rows[0].2, rows[1].2);
    // The API never returns it either.
    let (_, list) = app.get(&format!("/workspaces/{id}/secrets")).await;
    assert!(!list.to_string().contains(plaintext));
}

#[tokio::test]
async fn swapped_ciphertexts_fail_to_decrypt_and_no_partial_bundle_is_returned() {
    let db = TestDb::new();
    let key = new_key();
    let app = spawn_with_key(&db, &key).await;
    let id = app.create_workspace("Research", None).await;
    let path = format!("/workspaces/{id}/secrets");
    put_secret(&app, &path, "ALPHA", "alpha-value").await;
    put_secret(&app, &path, "BETA", "beta-value").await;
    put_secret(&app, &path, "GAMMA", "gamma-value").await;
    let keyring = keyring(&key, None);
    assert_eq!(
        bundle(&app.state.store, &keyring, &id).await.unwrap().len(),
        3
    );

    // Swap ALPHA's and BETA's ciphertexts with a raw UPDATE.
    let store = db.store();
    store
        .run(|c| {
            let rows: Vec<(DbUuid, Vec<u8>)> = ws::table
                .filter(ws::key.eq_any(["ALPHA", "BETA"]))
                .order(ws::key.asc())
                .select((ws::id, ws::encrypted_value))
                .load(c)?;
            let [(a, a_value), (b, b_value)] = <[_; 2]>::try_from(rows).unwrap();
            diesel::update(ws::table.filter(ws::id.eq(a)))
                .set(ws::encrypted_value.eq(b_value))
                .execute(c)?;
            diesel::update(ws::table.filter(ws::id.eq(b)))
                .set(ws::encrypted_value.eq(a_value))
                .execute(c)?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();

    let err = bundle(&app.state.store, &keyring, &id).await.unwrap_err();
    let BundleError::Undecryptable(failures) = &err else {
        panic!("expected Undecryptable, got {err:?}");
    };
    let failed: Vec<&str> = failures.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        failed,
        ["ALPHA", "BETA"],
        "GAMMA is fine, but not returned alone"
    );
    assert!(failures
        .iter()
        .all(|f| matches!(f.error, CryptoError::Decrypt)));
    let message = err.to_string();
    assert!(
        message.starts_with("2 secret(s) could not be decrypted"),
        "{message}"
    );
    for value in ["alpha-value", "beta-value", "gamma-value"] {
        assert!(!message.contains(value) && !format!("{err:?}").contains(value));
    }
}

#[tokio::test]
async fn a_wrong_master_key_reports_decryption_errors_not_garbage() {
    let db = TestDb::new();
    let key_a = new_key();
    let app = spawn_with_key(&db, &key_a).await;
    let id = app.create_workspace("Research", None).await;
    put_secret(&app, &format!("/workspaces/{id}/secrets"), "TOKEN", "t0k3n").await;
    put_secret(&app, "/settings/secrets", "GLOBAL", "g").await;
    app.stop().await;

    // Restarted with another key (and not the old one as previous).
    let key_b = new_key();
    let app = spawn_with_key(&db, &key_b).await;
    let wrong = keyring(&key_b, None);
    let err = bundle(&app.state.store, &wrong, &id).await.unwrap_err();
    let BundleError::Undecryptable(failures) = &err else {
        panic!("expected Undecryptable, got {err:?}");
    };
    assert_eq!(failures.len(), 2);
    let a_id = master(&key_a).key_id().to_string();
    for failure in failures {
        match &failure.error {
            CryptoError::UnknownKeyId { key_id } => assert_eq!(key_id, &a_id),
            other => panic!("expected UnknownKeyId, got {other:?}"),
        }
    }
    assert!(err.to_string().contains(&a_id), "{err}");
    // Listing needs no key and still works.
    let (status, list) = app.get(&format!("/workspaces/{id}/secrets")).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Even with the key_id column forged to the wrong key's id, authentication fails.
    let b_id = master(&key_b).key_id().to_string();
    db.store()
        .run(move |c| {
            diesel::update(ws::table)
                .set(ws::key_id.eq(&b_id))
                .execute(c)?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let err = bundle(&app.state.store, &wrong, &id).await.unwrap_err();
    let BundleError::Undecryptable(failures) = &err else {
        panic!("expected Undecryptable, got {err:?}");
    };
    let token = failures.iter().find(|f| f.key == "TOKEN").unwrap();
    assert!(matches!(token.error, CryptoError::Decrypt));

    // A rotation with the wrong previous key reports the rows and leaves them alone.
    let ring = keyring(&new_key(), Some(&new_key()));
    let before = raw_rows(&db.store()).await;
    let report = tokio::task::spawn_blocking({
        let store = db.store();
        move || rotate_all(&store, &ring, 10)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.rewrapped, 0);
    assert_eq!(report.failed.len(), 2);
    assert_eq!(raw_rows(&db.store()).await, before);
}

#[tokio::test]
async fn values_written_under_key_a_read_back_after_rotating_to_key_b() {
    let db = TestDb::new();
    let (key_a, key_b) = (new_key(), new_key());
    let app = spawn_with_key(&db, &key_a).await;
    let one = app.create_workspace("One", None).await;
    let two = app.create_workspace("Two", None).await;
    put_secret(&app, &format!("/workspaces/{one}/secrets"), "K1", "one-k1").await;
    put_secret(&app, &format!("/workspaces/{two}/secrets"), "K1", "two-k1").await;
    put_secret(&app, "/settings/secrets", "G", "global-g").await;
    app.stop().await;

    let rotation = keyring(&key_b, Some(&key_a));
    let store = db.store();
    let report = tokio::task::spawn_blocking(move || rotate_all(&store, &rotation, 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.rewrapped, 3);
    assert!(report.failed.is_empty());
    let b_id = master(&key_b).key_id().to_string();
    assert_eq!(key_ids(&db.store()).await, vec![b_id.clone(); 3]);

    // The new key alone reads everything; the old key alone reads nothing.
    let app = spawn_with_key(&db, &key_b).await;
    let only_b = keyring(&key_b, None);
    assert_eq!(
        bundle(&app.state.store, &only_b, &one).await.unwrap(),
        pairs(&[("G", "global-g"), ("K1", "one-k1")])
    );
    assert_eq!(
        bundle(&app.state.store, &only_b, &two).await.unwrap(),
        pairs(&[("G", "global-g"), ("K1", "two-k1")])
    );
    assert!(bundle(&app.state.store, &keyring(&key_a, None), &one)
        .await
        .is_err());
    // And new writes go on under key B.
    put_secret(&app, &format!("/workspaces/{one}/secrets"), "K2", "one-k2").await;
    assert_eq!(key_ids(&db.store()).await, vec![b_id; 4]);
}

#[tokio::test]
async fn an_interrupted_rotation_completes_when_run_again() {
    let db = TestDb::new();
    let (key_a, key_b) = (new_key(), new_key());
    let app = spawn_with_key(&db, &key_a).await;
    let id = app.create_workspace("Research", None).await;
    for i in 0..5 {
        put_secret(
            &app,
            &format!("/workspaces/{id}/secrets"),
            &format!("K{i}"),
            &format!("value-{i}"),
        )
        .await;
    }
    for i in 0..3 {
        put_secret(
            &app,
            "/settings/secrets",
            &format!("G{i}"),
            &format!("g-{i}"),
        )
        .await;
    }
    let b_id = master(&key_b).key_id().to_string();
    let on_b = |ids: Vec<String>| ids.iter().filter(|k| **k == b_id).count();

    // One batch of two, then the "crash".
    let store = db.store();
    let rotation = keyring(&key_b, Some(&key_a));
    let (first, rotation) = tokio::task::spawn_blocking(move || {
        let batch = rotate_batch(&store, &rotation, Cursor::start(), 2);
        (batch, rotation)
    })
    .await
    .unwrap();
    let first = first.unwrap();
    assert_eq!(first.rewrapped, 2);
    assert!(first.next.is_some());
    assert_eq!(on_b(key_ids(&db.store()).await), 2);
    // Meanwhile, both keys are configured: every value still reads back.
    assert_eq!(
        bundle(&app.state.store, &rotation, &id)
            .await
            .unwrap()
            .len(),
        8
    );

    // Run again from the start: rows already on key B are skipped.
    let store = db.store();
    let (report, rotation) = tokio::task::spawn_blocking(move || {
        let report = rotate_all(&store, &rotation, 2);
        (report, rotation)
    })
    .await
    .unwrap();
    let report = report.unwrap();
    assert_eq!(report.rewrapped, 6);
    assert!(report.failed.is_empty());
    assert_eq!(on_b(key_ids(&db.store()).await), 8);

    // A third run has nothing to do.
    let store = db.store();
    let again = tokio::task::spawn_blocking(move || rotate_all(&store, &rotation, 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.rewrapped, 0);

    let values = bundle(&app.state.store, &keyring(&key_b, None), &id)
        .await
        .unwrap();
    assert_eq!(values.len(), 8);
    assert_eq!(values[0], ("G0".to_string(), "g-0".to_string()));
    assert_eq!(values[7], ("K4".to_string(), "value-4".to_string()));
}

#[tokio::test]
async fn the_rotate_key_command_rewraps_and_reports() {
    let db = TestDb::new();
    let (key_a, key_b) = (new_key(), new_key());
    let app = spawn_with_key(&db, &key_a).await;
    let id = app.create_workspace("Research", None).await;
    put_secret(&app, &format!("/workspaces/{id}/secrets"), "K", "v").await;
    put_secret(&app, "/settings/secrets", "G", "g").await;
    app.stop().await;

    let run = |previous: Option<String>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_canopy"));
        command
            .args(["secrets", "rotate-key", "--batch-size", "1"])
            .env_clear()
            .env("DATABASE_URL", db.url_string())
            .env("SECRETS_ENCRYPTION_KEY", &key_b)
            .env("RUST_LOG", "warn");
        if let Some(previous) = previous {
            command.env("SECRETS_ENCRYPTION_KEY_PREVIOUS", previous);
        }
        command.output().unwrap()
    };
    let b_id = master(&key_b).key_id().to_string();

    // Without the old key the rows are reported, not touched, and the command fails.
    let output = run(None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 secret(s) could not be re-wrapped"),
        "{stderr}"
    );

    let output = run(Some(key_a.clone()));
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("rewrapped 2 secret(s) to key {b_id}")),
        "{stdout}"
    );
    for text in [&stdout, &String::from_utf8_lossy(&output.stderr)] {
        assert!(!text.contains(&key_a) && !text.contains(&key_b));
    }
    assert_eq!(key_ids(&db.store()).await, vec![b_id.clone(); 2]);

    let output = run(Some(key_a));
    assert!(String::from_utf8_lossy(&output.stdout).contains("rewrapped 0 secret(s)"));
}

#[tokio::test]
async fn concurrent_writes_of_a_new_key_all_succeed() {
    let db = TestDb::new();
    let app = spawn_with_key(&db, &new_key()).await;
    let id = app.create_workspace("Research", None).await;
    let path = format!("/workspaces/{id}/secrets");
    let writes = (0..8).map(|i| {
        let (app, path) = (&app, &path);
        async move {
            app.put(path, json!({ "key": "RACE", "value": format!("v{i}") }))
                .await
        }
    });
    let globals = (0..8).map(|i| {
        let app = &app;
        async move {
            app.put(
                "/settings/secrets/RACE",
                json!({ "value": format!("g{i}") }),
            )
            .await
        }
    });
    let (writes, globals) = futures_util::future::join(
        futures_util::future::join_all(writes),
        futures_util::future::join_all(globals),
    )
    .await;
    for (status, body) in writes.into_iter().chain(globals) {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(raw_rows(&db.store()).await.len(), 2);
}

#[tokio::test]
async fn secrets_routes_need_admin_or_the_workspace_token() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default()
            .var("SECRETS_ENCRYPTION_KEY", &new_key())
            .var("ADMIN_TOKEN", "admin-secret"),
    )
    .await;
    let id = app.create_workspace("Research", None).await;
    let anonymous = |method: reqwest::Method, path: String| {
        let request = app.client.request(method, app.url(&path));
        async move {
            let response = request
                .json(&json!({ "key": "K", "value": "v" }))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    for (method, path) in [
        (reqwest::Method::GET, "/settings/secrets".to_string()),
        (reqwest::Method::POST, "/settings/secrets".to_string()),
        (reqwest::Method::DELETE, "/settings/secrets/K".to_string()),
    ] {
        assert_eq!(
            anonymous(method, path).await,
            (401, json!({ "error": "admin token or API key required" }))
        );
    }
    for (method, path) in [
        (reqwest::Method::GET, format!("/workspaces/{id}/secrets")),
        (reqwest::Method::POST, format!("/workspaces/{id}/secrets")),
        (
            reqwest::Method::DELETE,
            format!("/workspaces/{id}/secrets/K"),
        ),
    ] {
        assert_eq!(
            anonymous(method, path).await,
            (401, json!({ "error": "missing workspace auth token" }))
        );
    }
    // The admin (the helpers send its token) gets through.
    put_secret(&app, &format!("/workspaces/{id}/secrets"), "K", "v").await;
    assert!(raw_rows(&db.store()).await.len() == 1);
}

#[test]
fn an_invalid_master_key_stops_start_up_naming_the_variable() {
    use canopy::config::Config;
    let config = |vars: &[(&str, &str)]| {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    };
    let short = STANDARD.encode([7u8; 16]);
    let err = config(&[("SECRETS_ENCRYPTION_KEY", &short)]).unwrap_err();
    assert_eq!(err.var, "SECRETS_ENCRYPTION_KEY");
    let message = err.to_string();
    assert!(message.starts_with("invalid SECRETS_ENCRYPTION_KEY: must be base64 of 32 bytes"));
    assert!(!message.contains(&short) && !message.contains('\n'));

    let good = new_key();
    let err = config(&[
        ("SECRETS_ENCRYPTION_KEY", &good),
        ("SECRETS_ENCRYPTION_KEY_PREVIOUS", "not base64!"),
    ])
    .unwrap_err();
    assert_eq!(err.var, "SECRETS_ENCRYPTION_KEY_PREVIOUS");
    let err = config(&[("SECRETS_ENCRYPTION_KEY_PREVIOUS", &good)]).unwrap_err();
    assert_eq!(err.var, "SECRETS_ENCRYPTION_KEY");

    // A valid key is accepted, and never printed by the configuration's Debug.
    let ok = config(&[
        ("SECRETS_ENCRYPTION_KEY", &good),
        ("SECRETS_ENCRYPTION_KEY_PREVIOUS", &new_key()),
    ])
    .unwrap();
    assert!(!format!("{ok:?}").contains(&good));
    let secrets = canopy::secrets::Secrets::from_config(&ok).unwrap();
    assert!(!format!("{secrets:?}").contains(&good));
}
