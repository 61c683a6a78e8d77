//! Secrets the database must not give away, and what a database writer cannot hide, on SQLite and
//! PostgreSQL through the real server and the real binary:
//! - email bodies (reset links and codes) are sealed in the outbox and deleted once delivered;
//! - the audit chain is keyed: a chain recomputed without the master key, a tail cut behind a moved head
//!   (against an exported checkpoint) and an organization's deleted history all fail `audit verify`;
//! - `user disable` ends sessions and tokens at once, `app rotate-secret` refuses the old secret at once.

use std::collections::BTreeMap;
use std::time::Duration;

use latchkey::app::App;
use latchkey::audit::{AuditEvent, CHAIN_KEYED, CHAIN_LEGACY};
use latchkey::email::delivery::{self, DeliveryOptions};
use latchkey::email::smtp::Mailer;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;

use crate::audit::org_with_three_events;
use crate::email::{SmtpSink, as_refs, smtp_vars};
use crate::helpers::{
    Backend, TestApp, TestDb, cli_json, open_services, run_cli, test_config_with,
};
use crate::oauth_support::*;

type Env = BTreeMap<String, String>;

// ---------------------------------------------------------------------------------------------------------
// 19. No live secret in the outbox

/// Every text and byte column of every outbox row, as stored (no unsealing).
async fn raw_outbox_rows(db: &TestDb) -> Vec<(String, Vec<u8>, Option<i64>)> {
    let sql = "SELECT id, org_id, recipient, subject, body_text, body_sealed, last_error, sent_at \
               FROM email_outbox ORDER BY created_at, id";
    type Row = (
        String,
        String,
        String,
        String,
        String,
        Option<Vec<u8>>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Row> = match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
            let _ = conn.close().await;
            rows
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
            let _ = conn.close().await;
            rows
        }
    };
    rows.into_iter()
        .map(|(id, org, to, subject, body, sealed, error, sent_at)| {
            let mut bytes = [
                id.clone(),
                org,
                to,
                subject,
                body,
                error.unwrap_or_default(),
            ]
            .join("\n")
            .into_bytes();
            bytes.extend(sealed.unwrap_or_default());
            (id, bytes, sent_at)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Asks for a password reset over HTTP; returns the reset session id (the cookie the link also carries).
async fn request_reset(app: &TestApp, fx: &Fixture) -> String {
    let mut b = Browser::new(app);
    let page = b.get(&fx.path("/forgot-password")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = hidden_field(&page.body, "csrf");
    let answer = b
        .post_form(
            &fx.path("/forgot-password"),
            &[("csrf", &csrf), ("email", &fx.email)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    b.cookies
        .get("latchkey-reset")
        .expect("the reset session cookie")
        .clone()
}

/// The 6-digit code of a password-reset email.
fn reset_code(body: &str) -> String {
    let start = body.find("Your code is ").expect("a code") + "Your code is ".len();
    body[start..start + 6].to_string()
}

async fn reset_email_is_sealed_while_queued_and_its_body_deleted_once_delivered(backend: Backend) {
    // No smtp_host: the message waits in the outbox, as in development.
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let session = request_reset(&app, &fx).await;
    let rows = raw_outbox_rows(&app.db).await;
    assert_eq!(rows.len(), 1, "one reset email queued");
    let (id, stored, _) = &rows[0];

    // The operator's outbox shows the body, unsealed, while it is queued.
    let env = app.db.env();
    let shown = cli_json(&["outbox", "show", id], &env, None);
    let body = shown["body_text"].as_str().unwrap().to_string();
    assert_eq!(shown["status"], "queued");
    let code = reset_code(&body);
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/reset-password?session="))
        .expect("a reset link")
        .to_string();
    assert!(link.contains(&session), "{link}");
    let (status, text, _) = run_cli(&["outbox", "show", id], &env, None);
    assert_eq!(status, 0);
    assert!(text.contains(&link), "{text}");

    // The stored row holds none of it.
    for secret in [
        code.as_str(),
        session.as_str(),
        link.as_str(),
        "reset-password?",
    ] {
        assert!(
            !contains(stored, secret),
            "{secret:?} is readable in the stored outbox row"
        );
    }

    // Delivery through a real SMTP server: the right email arrives, then the body is gone from the row.
    let sink = SmtpSink::start(0);
    let vars = smtp_vars(&sink.port.to_string());
    let sender = App::open(test_config_with(&app.db, &as_refs(&vars)))
        .await
        .expect("services open");
    let mailer = Mailer::new(
        sender.config.smtp.as_ref().unwrap(),
        sender.config.smtp_from.clone(),
    )
    .unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let sent = delivery::deliver_due(&sender, &mailer, &DeliveryOptions::default(), &stop_rx)
        .await
        .unwrap();
    assert_eq!(sent, 1);
    let received = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received[0]["to"], fx.email);
    assert_eq!(
        received[0]["body"].as_str().unwrap().replace("\r\n", "\n"),
        body,
        "the recipient gets the whole message"
    );

    let rows = raw_outbox_rows(&app.db).await;
    let (_, stored, sent_at) = &rows[0];
    assert!(sent_at.is_some(), "the metadata stays: it was sent");
    for secret in [code.as_str(), session.as_str(), link.as_str()] {
        assert!(!contains(stored, secret));
    }
    let empty_body = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM email_outbox WHERE id = '{id}' AND body_text = '' \
             AND body_sealed IS NULL AND recipient = '{}'",
            fx.email
        ))
        .await;
    assert_eq!(empty_body, 1, "a delivered message keeps no body");
    let shown = cli_json(&["outbox", "show", id], &env, None);
    assert_eq!(shown["status"], "sent");
    assert_eq!(shown["recipient"], fx.email.as_str());
    let (_, text, _) = run_cli(&["outbox", "show", id], &env, None);
    assert!(
        text.contains("deleted once the message is delivered"),
        "{text}"
    );
    assert!(!text.contains(&code));
    sender.db.close().await;
    app.stop().await;
}

backend_tests! {
    reset_email_is_sealed_while_queued_and_its_body_deleted_once_delivered => sqlite_reset_email_is_sealed_while_queued_and_deleted_once_delivered, postgres_reset_email_is_sealed_while_queued_and_deleted_once_delivered;
}

// ---------------------------------------------------------------------------------------------------------
// 20. The audit chain against someone who can write the database

/// What a database owner does first: remove the triggers that keep the log append-only.
async fn drop_audit_triggers(db: &TestDb) {
    let sql = match db.backend {
        Backend::Sqlite => {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete; \
             DROP TRIGGER audit_heads_no_delete;"
        }
        Backend::Postgres => {
            "DROP TRIGGER audit_events_no_update ON audit_events; \
             DROP TRIGGER audit_events_no_truncate ON audit_events; \
             DROP TRIGGER audit_heads_no_delete ON audit_heads; \
             DROP TRIGGER audit_heads_no_truncate ON audit_heads;"
        }
    };
    db.exec(sql).await.expect("drop the triggers");
}

fn sql_text(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("'{}'", v.replace('\'', "''")),
        None => "NULL".into(),
    }
}

/// Rewrites the stored chain as `events`, with the head moved to its last event.
async fn write_chain(db: &TestDb, events: &[AuditEvent]) {
    let mut sql = String::new();
    for e in events {
        sql.push_str(&format!(
            "UPDATE audit_events SET action = '{}', after_state = {}, prev_hash = '{}', hash = '{}', \
             chain_version = {} WHERE org_id = '{}' AND seq = {};\n",
            e.action,
            sql_text(&e.after_state),
            e.prev_hash,
            e.hash,
            e.chain_version,
            e.org_id,
            e.seq
        ));
    }
    let last = events.last().unwrap();
    sql.push_str(&format!(
        "UPDATE audit_heads SET seq = {}, hash = '{}' WHERE org_id = '{}';",
        last.seq, last.hash, last.org_id
    ));
    db.exec(&sql).await.expect("rewrite the chain");
}

/// Recomputes every link with plain SHA-256 (what anyone can compute without the master key), stored as
/// `version`.
fn relink_with_plain_sha256(events: &mut [AuditEvent], version: i64) {
    let anything = latchkey::crypto::MasterKey::generate().audit_keys();
    let mut prev = latchkey::audit::GENESIS_HASH.to_string();
    for e in events.iter_mut() {
        e.prev_hash = prev.clone();
        e.chain_version = CHAIN_LEGACY; // plain SHA-256; the key is not used
        e.hash = e.compute_hash(&anything).unwrap();
        e.chain_version = version;
        prev = e.hash.clone();
    }
}

async fn events_of(db: &TestDb, org_id: &str) -> Vec<AuditEvent> {
    let services = open_services(db).await;
    let events = services
        .db
        .tenant(&org_id.into())
        .audit_events(0, 1000)
        .await
        .unwrap();
    services.db.close().await;
    events
}

/// Runs `audit verify` with `args`; asserts exit 1 and a break at `seq` whose reason contains `reason`.
fn assert_broken(env: &Env, args: &[&str], seq: i64, reason: &str) -> Value {
    let mut full = vec!["--json", "audit", "verify"];
    full.extend_from_slice(args);
    let (code, stdout, stderr) = run_cli(&full, env, None);
    assert_eq!(code, 1, "stdout={stdout} stderr={stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    let report = if report.is_array() {
        report
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ok"] == false)
            .cloned()
            .unwrap()
    } else {
        report
    };
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["broken_at"], seq, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains(reason),
        "{report}"
    );
    let mut text_args = vec!["audit", "verify"];
    text_args.extend_from_slice(args);
    let (code, stdout, _) = run_cli(&text_args, env, None);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(&format!("BROKEN at event {seq}")),
        "{stdout}"
    );
    report
}

async fn a_chain_recomputed_without_the_master_key_fails_verification(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    let org_id = org_with_three_events(&env, "acme");
    let original = events_of(&db, &org_id).await;
    assert!(original.iter().all(|e| e.chain_version == CHAIN_KEYED));
    drop_audit_triggers(&db).await;

    // Event 2 edited and every hash recomputed with plain SHA-256, the head moved along.
    let mut forged = original.clone();
    forged[1].action = "app.nothing_happened".into();
    relink_with_plain_sha256(&mut forged, CHAIN_KEYED);
    write_chain(&db, &forged).await;
    assert_broken(&env, &["--org", "acme"], 1, "modified");

    // The same, declared as old unkeyed events: refused as a chain never closed under the key.
    relink_with_plain_sha256(&mut forged, CHAIN_LEGACY);
    write_chain(&db, &forged).await;
    assert_broken(&env, &["--org", "acme"], 4, "unkeyed");

    // Restored, the chain verifies again: the failures were the edit, not the triggers.
    write_chain(&db, &original).await;
    let report = cli_json(&["audit", "verify", "--org", "acme"], &env, None);
    assert_eq!(report["ok"], true, "{report}");
}

async fn a_tail_cut_behind_a_moved_head_fails_against_an_exported_checkpoint(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    let org_id = org_with_three_events(&env, "acme");
    let (code, line, stderr) = run_cli(&["audit", "checkpoint", "--org", "acme"], &env, None);
    assert_eq!(code, 0, "{stderr}");
    let checkpoint: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(checkpoint["org"], "acme");
    assert_eq!(checkpoint["org_id"], org_id.as_str());
    assert_eq!(checkpoint["seq"], 3);
    let file = db.data_dir().join("checkpoints.jsonl");
    std::fs::write(&file, &line).unwrap();
    let file_arg = file.display().to_string();

    // Untouched (and grown since), the chain verifies against the checkpoint.
    cli_json(
        &[
            "user",
            "create",
            "--org",
            "acme",
            "--email",
            "joe@example.com",
        ],
        &env,
        None,
    );
    let report = cli_json(
        &[
            "audit",
            "verify",
            "--org",
            "acme",
            "--checkpoint",
            &file_arg,
        ],
        &env,
        None,
    );
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checkpoint_seq"], 3);

    // Events 3 and 4 cut, the head moved back to event 2: consistent on its own...
    drop_audit_triggers(&db).await;
    let events = events_of(&db, &org_id).await;
    db.exec(&format!(
        "DELETE FROM audit_events WHERE org_id = '{org_id}' AND seq >= 3; \
         UPDATE audit_heads SET seq = 2, hash = '{}' WHERE org_id = '{org_id}';",
        events[1].hash
    ))
    .await
    .unwrap();
    let report = cli_json(&["audit", "verify", "--org", "acme"], &env, None);
    assert_eq!(
        report["ok"], true,
        "without a checkpoint this cut is invisible"
    );
    // ...but not against the checkpoint.
    assert_broken(
        &env,
        &["--org", "acme", "--checkpoint", &file_arg],
        3,
        "events removed",
    );
    assert_broken(&env, &["--checkpoint", &file_arg], 3, "events removed");

    // A checkpoint edited to fit (or made with another key) is refused, not trusted.
    let mut edited = checkpoint.clone();
    edited["seq"] = 2.into();
    edited["head"] = events[1].hash.clone().into();
    std::fs::write(&file, edited.to_string()).unwrap();
    let (code, stdout, stderr) = run_cli(
        &[
            "audit",
            "verify",
            "--org",
            "acme",
            "--checkpoint",
            &file_arg,
        ],
        &env,
        None,
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("signature does not verify"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

async fn an_organizations_deleted_history_fails_verification(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    let acme = org_with_three_events(&env, "acme");
    org_with_three_events(&env, "beta");
    let (code, checkpoints, _) = run_cli(&["audit", "checkpoint"], &env, None);
    assert_eq!(code, 0);
    assert_eq!(checkpoints.lines().count(), 2, "one line per organization");
    let file = db.data_dir().join("checkpoints.jsonl");
    std::fs::write(&file, &checkpoints).unwrap();
    let file_arg = file.display().to_string();
    let all = cli_json(&["audit", "verify"], &env, None);
    assert_eq!(all.as_array().unwrap().len(), 2);

    // Every event and the head of acme deleted, as the database owner could.
    drop_audit_triggers(&db).await;
    db.exec(&format!(
        "DELETE FROM audit_events WHERE org_id = '{acme}'; DELETE FROM audit_heads WHERE org_id = '{acme}';"
    ))
    .await
    .unwrap();
    assert_broken(&env, &["--org", "acme"], 1, "no audit history");
    let report = assert_broken(&env, &[], 1, "no audit history");
    assert_eq!(report["org"], "acme");
    let beta = cli_json(&["audit", "verify", "--org", "beta"], &env, None);
    assert_eq!(beta["ok"], true, "{beta}");

    // With the organization itself gone too, the exported checkpoint still knows it existed.
    db.exec(&format!("DELETE FROM organizations WHERE id = '{acme}'"))
        .await
        .unwrap();
    let listed = cli_json(&["audit", "verify"], &env, None);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let (code, _, stderr) = run_cli(&["audit", "verify", "--checkpoint", &file_arg], &env, None);
    assert_eq!(code, 1);
    assert!(stderr.contains("no audit history at all"), "{stderr}");
}

async fn the_log_refuses_truncation_and_head_removal(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    org_with_three_events(&env, "acme");
    if backend == Backend::Postgres {
        for table in ["audit_events", "audit_heads"] {
            let truncate = db.exec(&format!("TRUNCATE {table}")).await;
            assert!(
                truncate.as_ref().is_err_and(|e| {
                    let text = e.to_string();
                    text.contains("append-only") || text.contains("never deleted")
                }),
                "TRUNCATE {table} must be refused: {truncate:?}"
            );
        }
    }
    let delete = db.exec("DELETE FROM audit_heads").await;
    assert!(
        delete
            .as_ref()
            .is_err_and(|e| e.to_string().contains("never deleted")),
        "{delete:?}"
    );
    assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM audit_events").await, 3);
    let report = cli_json(&["audit", "verify", "--org", "acme"], &env, None);
    assert_eq!(report["ok"], true, "{report}");
}

/// A database from before this change: the chain plain SHA-256, a queued body in clear. The first start
/// of the new binary keys it: the legacy chain is closed by a keyed `audit.chain_keyed` event and verifies,
/// the queued body is sealed and the delivered one deleted. Rewriting the chain as legacy events later is
/// caught, and later starts do not close it again.
async fn an_upgraded_database_closes_its_legacy_chain_and_seals_its_outbox(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    let org_id = org_with_three_events(&env, "acme");
    let mut legacy = events_of(&db, &org_id).await;
    drop_audit_triggers(&db).await;
    relink_with_plain_sha256(&mut legacy, CHAIN_LEGACY);
    write_chain(&db, &legacy).await;
    let created = latchkey::time_now();
    db.exec(&format!(
        "INSERT INTO email_outbox (id, org_id, recipient, subject, body_text, created_at) VALUES \
         ('eml_queued', '{org_id}', 'ann@example.com', 'Reset', 'code 314159 LEGACYSECRET', {created}); \
         INSERT INTO email_outbox (id, org_id, recipient, subject, body_text, created_at, sent_at) VALUES \
         ('eml_sent', '{org_id}', 'bob@example.com', 'Reset', 'code 271828 LEGACYSENT', {created}, {created});"
    ))
    .await
    .unwrap();
    let undo_0004 = match backend {
        Backend::Sqlite => {
            "ALTER TABLE audit_events DROP COLUMN chain_version; \
             ALTER TABLE email_outbox DROP COLUMN body_sealed; \
             DROP TABLE audit_keying_pending; \
             DELETE FROM latchkey_migrations WHERE version = 4;"
        }
        Backend::Postgres => {
            "ALTER TABLE audit_events DROP COLUMN chain_version; \
             ALTER TABLE email_outbox DROP COLUMN body_sealed; \
             DROP FUNCTION audit_heads_keep(); \
             DROP TABLE audit_keying_pending; \
             DELETE FROM latchkey_migrations WHERE version = 4;"
        }
    };
    db.exec(undo_0004)
        .await
        .expect("back to the schema before 0004");

    // The upgrade applies 0004 and then dies before closing the legacy chain (as a crash, a full disk or
    // an orchestrator's timeout could make it): the duty is recorded, and the next start does it.
    let keying = match backend {
        Backend::Sqlite => {
            include_str!("../../migrations/sqlite/0004_sealed_outbox_keyed_audit.sql")
        }
        Backend::Postgres => {
            include_str!("../../migrations/postgres/0004_sealed_outbox_keyed_audit.sql")
        }
    };
    db.exec(keying).await.expect("0004 applied by hand");
    db.exec(&format!(
        "INSERT INTO latchkey_migrations (version, name, applied_at) \
         VALUES (4, '0004_sealed_outbox_keyed_audit', {created})"
    ))
    .await
    .unwrap();
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM audit_keying_pending")
            .await,
        1,
        "the chain to close is recorded by the migration itself"
    );

    cli_json(&["migrate"], &env, None);
    assert_eq!(
        db.scalar_i64("SELECT COUNT(*) FROM audit_keying_pending")
            .await,
        0
    );
    let report = cli_json(&["audit", "verify", "--org", "acme"], &env, None);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], 4);
    let events = events_of(&db, &org_id).await;
    assert_eq!(events[3].action, "audit.chain_keyed");
    assert_eq!(events[3].chain_version, CHAIN_KEYED);
    assert_eq!(
        events[3].prev_hash, legacy[2].hash,
        "it links to the legacy head"
    );

    let rows = raw_outbox_rows(&db).await;
    for (id, stored, _) in &rows {
        assert!(!contains(stored, "LEGACY"), "{id} still readable");
    }
    let shown = cli_json(&["outbox", "show", "eml_queued"], &env, None);
    assert_eq!(shown["body_text"], "code 314159 LEGACYSECRET");

    // The whole chain, keyed anchor included, rewritten as legacy events: refused, now and later.
    let mut downgraded = events_of(&db, &org_id).await;
    relink_with_plain_sha256(&mut downgraded, CHAIN_LEGACY);
    write_chain(&db, &downgraded).await;
    assert_broken(&env, &["--org", "acme"], 5, "unkeyed");
    assert_broken(&env, &["--org", "acme"], 5, "unkeyed");
}

backend_tests! {
    a_chain_recomputed_without_the_master_key_fails_verification => sqlite_a_chain_recomputed_without_the_master_key_fails_verification, postgres_a_chain_recomputed_without_the_master_key_fails_verification;
    a_tail_cut_behind_a_moved_head_fails_against_an_exported_checkpoint => sqlite_a_tail_cut_behind_a_moved_head_fails_against_an_exported_checkpoint, postgres_a_tail_cut_behind_a_moved_head_fails_against_an_exported_checkpoint;
    an_organizations_deleted_history_fails_verification => sqlite_an_organizations_deleted_history_fails_verification, postgres_an_organizations_deleted_history_fails_verification;
    the_log_refuses_truncation_and_head_removal => sqlite_the_log_refuses_truncation_and_head_removal, postgres_the_log_refuses_truncation_and_head_removal;
    an_upgraded_database_closes_its_legacy_chain_and_seals_its_outbox => sqlite_an_upgraded_database_closes_its_legacy_chain_and_seals_its_outbox, postgres_an_upgraded_database_closes_its_legacy_chain_and_seals_its_outbox;
}

// ---------------------------------------------------------------------------------------------------------
// 22. Disabling users and rotating client secrets from the command line

/// Runs the CLI expecting a refusal: exit 1 and one line on stderr containing `needle`.
fn assert_refused(env: &Env, args: &[&str], needle: &str) {
    let (code, stdout, stderr) = run_cli(args, env, None);
    assert_eq!(code, 1, "{args:?}: stdout={stdout} stderr={stderr}");
    assert!(stdout.is_empty(), "{args:?}: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
}

async fn open_sessions(db: &TestDb, user_id: &str) -> i64 {
    db.scalar_i64(&format!(
        "SELECT COUNT(*) FROM sessions WHERE user_id = '{user_id}' AND revoked_at IS NULL"
    ))
    .await
}

async fn disabling_a_user_ends_their_sessions_and_tokens_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let env = app.db.env();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let issued = tokens(&app, &fx, &client).await;
    let access = issued["access_token"].as_str().unwrap();
    let refresh_token = issued["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &fx, &client, access).await["active"], true);
    assert!(open_sessions(&app.db, &fx.user.id).await >= 1);

    let slug = fx.org.slug.as_str();
    let disabled = cli_json(
        &["user", "disable", "--org", slug, "--email", &fx.email],
        &env,
        None,
    );
    assert_eq!(disabled["changed"], true, "{disabled}");
    assert_eq!(disabled["user"]["disabled"], true);
    assert!(disabled["sessions_ended"].as_u64().unwrap() >= 1);

    // At once: no session, the access token inactive everywhere it is checked, no refresh.
    assert_eq!(open_sessions(&app.db, &fx.user.id).await, 0);
    assert_eq!(
        introspect(&app, &fx, &client, access).await["active"],
        false
    );
    assert_eq!(
        userinfo(&app, &fx, access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refreshed = refresh(&app, &fx, &client, refresh_token).await;
    assert_eq!(
        refreshed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refreshed.body
    );
    assert_eq!(refreshed.json()["error"], "invalid_grant");

    // Enabling lets the user sign in again but revives nothing from before.
    let (code, text, stderr) = run_cli(
        &["user", "enable", "--org", slug, "--email", &fx.email],
        &env,
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(text.starts_with("enabled user"), "{text}");
    assert_eq!(
        introspect(&app, &fx, &client, access).await["active"],
        false
    );
    let again = tokens(&app, &fx, &client).await;
    let fresh = again["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &fx, &client, fresh).await["active"], true);
    let (code, text, _) = run_cli(
        &["user", "enable", "--org", slug, "--email", &fx.email],
        &env,
        None,
    );
    assert_eq!(code, 0);
    assert!(text.contains("already enabled"), "{text}");

    let actions = audit_actions(&app, &fx).await;
    assert!(actions.iter().any(|a| a == "user.disabled"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "user.enabled"), "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| *a == "user.enabled").count(),
        1,
        "a no-op is not audited"
    );

    assert_refused(
        &env,
        &["user", "disable", "--org", "nope", "--email", &fx.email],
        "\"nope\"",
    );
    assert_refused(
        &env,
        &[
            "user",
            "disable",
            "--org",
            slug,
            "--email",
            "who@example.com",
        ],
        "who@example.com",
    );
    assert_refused(
        &env,
        &["user", "enable", "--org", slug, "--email", "not-an-address"],
        "email",
    );
    app.stop().await;
}

async fn rotating_a_client_secret_accepts_the_new_one_at_once_and_refuses_the_old_one(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let env = app.db.env();
    let fx = fixture(&app).await;
    let slug = fx.org.slug.as_str();
    let created = cli_json(
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
        &env,
        None,
    );
    let client_id = created["client_id"].as_str().unwrap().to_string();
    let old = Client {
        client_id: client_id.clone(),
        secret: Some(created["client_secret"].as_str().unwrap().to_string()),
        redirect_uri: String::new(),
    };
    let grant = [("grant_type", "client_credentials")];
    // The server now has the application in its cache.
    assert_eq!(token(&app, &fx, &old, &grant).await.status, StatusCode::OK);

    let (code, text, stderr) = run_cli(
        &[
            "app",
            "rotate-secret",
            "--org",
            slug,
            "--client-id",
            &client_id,
        ],
        &env,
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .expect("the new secret, printed once")
        .to_string();
    assert_eq!(text.matches(&secret).count(), 1, "{text}");
    assert_ne!(Some(&secret), old.secret.as_ref());

    // The new secret works from its first request, even though the server cached the application.
    let new = Client {
        secret: Some(secret),
        ..old.clone()
    };
    assert_eq!(token(&app, &fx, &new, &grant).await.status, StatusCode::OK);
    // The old one is refused once the cached record is gone: within the 5 s application cache.
    let rotated_at = std::time::Instant::now();
    let refused = loop {
        let answer = token(&app, &fx, &old, &grant).await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        assert!(
            rotated_at.elapsed() < std::time::Duration::from_secs(7),
            "the old secret still works after the application cache's lifetime"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_client");
    let actions = audit_actions(&app, &fx).await;
    assert!(
        actions.iter().any(|a| a == "app.secret_rotated"),
        "{actions:?}"
    );

    let public = register(&app, &fx, new_app(latchkey::apps::ClientType::Public)).await;
    assert_refused(
        &env,
        &[
            "app",
            "rotate-secret",
            "--org",
            slug,
            "--client-id",
            &public.client_id,
        ],
        "public client",
    );
    assert_refused(
        &env,
        &["app", "rotate-secret", "--org", slug, "--client-id", "nope"],
        "\"nope\"",
    );
    assert_refused(
        &env,
        &[
            "app",
            "rotate-secret",
            "--org",
            "nope",
            "--client-id",
            &client_id,
        ],
        "\"nope\"",
    );
    // Another organization's application is unknown here.
    let other = fixture(&app).await;
    assert_refused(
        &env,
        &[
            "app",
            "rotate-secret",
            "--org",
            &other.org.slug,
            "--client-id",
            &client_id,
        ],
        &client_id,
    );
    assert_eq!(token(&app, &fx, &new, &grant).await.status, StatusCode::OK);
    app.stop().await;
}

backend_tests! {
    disabling_a_user_ends_their_sessions_and_tokens_at_once => sqlite_disabling_a_user_ends_their_sessions_and_tokens_at_once, postgres_disabling_a_user_ends_their_sessions_and_tokens_at_once;
    rotating_a_client_secret_accepts_the_new_one_at_once_and_refuses_the_old_one => sqlite_rotating_a_client_secret_accepts_the_new_one_at_once_and_refuses_the_old_one, postgres_rotating_a_client_secret_accepts_the_new_one_at_once_and_refuses_the_old_one;
}
