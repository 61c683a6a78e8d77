//! The audit log's tamper evidence, checked with the real binary on a database altered behind its back.

use serde_json::Value;

use crate::helpers::{Backend, TestDb, cli_json, run_cli};

/// An organization with three audit events (org, app, user) created through the CLI; its id.
pub(crate) fn org_with_three_events(
    env: &std::collections::BTreeMap<String, String>,
    slug: &str,
) -> String {
    let org = cli_json(
        &["org", "create", "--slug", slug, "--name", "Audited"],
        env,
        None,
    );
    cli_json(
        &[
            "app",
            "create",
            "--org",
            slug,
            "--name",
            "Svc",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
        ],
        env,
        None,
    );
    cli_json(
        &[
            "user",
            "create",
            "--org",
            slug,
            "--email",
            "ivy@example.com",
        ],
        env,
        None,
    );
    let report = cli_json(&["audit", "verify", "--org", slug], env, None);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], 3);
    org["id"].as_str().unwrap().to_string()
}

/// `audit verify` must exit 1 and report `seq` as the break, in text and JSON.
fn assert_verify_reports_break(
    env: &std::collections::BTreeMap<String, String>,
    slug: &str,
    seq: i64,
    reason: &str,
) {
    let (code, stdout, stderr) = run_cli(&["audit", "verify", "--org", slug], env, None);
    assert_eq!(code, 1, "stdout={stdout} stderr={stderr}");
    assert!(
        stdout.contains(&format!("BROKEN at event {seq}")),
        "{stdout}"
    );
    assert!(stdout.contains(reason), "{stdout}");

    let (code, stdout, _) = run_cli(&["--json", "audit", "verify", "--org", slug], env, None);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["broken_at"], seq, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains(reason),
        "{report}"
    );
}

#[tokio::test]
async fn audit_verify_detects_a_row_edited_behind_its_back() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = db.env();
    let id = org_with_three_events(&env, "acme");
    db.exec("DROP TRIGGER audit_events_no_update")
        .await
        .unwrap();
    let changed = db
        .exec(&format!(
            "UPDATE audit_events SET action = 'app.nothing' WHERE org_id = '{id}' AND seq = 2"
        ))
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_verify_reports_break(&env, "acme", 2, "modified");
}

#[tokio::test]
async fn audit_verify_detects_a_forged_row_rehashed_to_look_consistent() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = db.env();
    let id = org_with_three_events(&env, "acme");
    db.exec("DROP TRIGGER audit_events_no_update")
        .await
        .unwrap();
    // Replace event 2's hash with garbage-but-well-formed: the next event's prev_hash no longer matches.
    db.exec(&format!(
        "UPDATE audit_events SET hash = '{}' WHERE org_id = '{id}' AND seq = 2",
        "ab".repeat(32)
    ))
    .await
    .unwrap();
    let (code, stdout, _) = run_cli(&["--json", "audit", "verify", "--org", "acme"], &env, None);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["broken_at"], 2, "{report}");
}

#[tokio::test]
async fn audit_verify_detects_the_last_row_deleted() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = db.env();
    let id = org_with_three_events(&env, "acme");
    db.exec("DROP TRIGGER audit_events_no_delete")
        .await
        .unwrap();
    let deleted = db
        .exec(&format!(
            "DELETE FROM audit_events WHERE org_id = '{id}' AND seq = 3"
        ))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_verify_reports_break(&env, "acme", 3, "removed");
}

#[tokio::test]
async fn audit_verify_detects_a_row_deleted_in_the_middle() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = db.env();
    let id = org_with_three_events(&env, "acme");
    db.exec("DROP TRIGGER audit_events_no_delete")
        .await
        .unwrap();
    db.exec(&format!(
        "DELETE FROM audit_events WHERE org_id = '{id}' AND seq = 2"
    ))
    .await
    .unwrap();
    assert_verify_reports_break(&env, "acme", 2, "missing");
}

backend_tests! {
    audit_rows_written_by_the_cli_cannot_be_updated_or_deleted => sqlite_audit_rows_written_by_the_cli_cannot_be_updated_or_deleted, postgres_audit_rows_written_by_the_cli_cannot_be_updated_or_deleted;
}

async fn audit_rows_written_by_the_cli_cannot_be_updated_or_deleted(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    org_with_three_events(&env, "acme");
    let update = db
        .exec("UPDATE audit_events SET action = 'forged' WHERE seq = 2")
        .await;
    assert!(
        update
            .as_ref()
            .is_err_and(|e| e.to_string().contains("append-only")),
        "UPDATE must be refused: {update:?}"
    );
    let delete = db.exec("DELETE FROM audit_events WHERE seq = 3").await;
    assert!(
        delete
            .as_ref()
            .is_err_and(|e| e.to_string().contains("append-only")),
        "DELETE must be refused: {delete:?}"
    );
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM audit_events").await, 3);
    let report = cli_json(&["audit", "verify", "--org", "acme"], &env, None);
    assert_eq!(report["ok"], true, "{report}");
}
