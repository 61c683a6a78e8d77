//! Email delivery: the outbox contract on both backends (claims, leases, retries, listing), a real SMTP
//! conversation with a real SMTP server process (`tests/support/smtp_sink.py`), a relay that is down at
//! first, `latchkey serve` delivering with logs free of bodies, and the development outbox through the CLI.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latchkey::app::App;
use latchkey::audit::Actor;
use latchkey::email::delivery::{self, DeliveryOptions};
use latchkey::email::smtp::Mailer;
use latchkey::email::{self as mail, OutboxStatus, OutgoingEmail};
use latchkey::orgs::{self, NewOrganization, Organization};
use latchkey::time_now;
use serde_json::Value;

use crate::helpers::{
    Backend, ServeProcess, TestApp, TestDb, cli_json, free_port, open_services, run_cli,
    test_config_with,
};

/// A real SMTP server (Python's standard-library `smtpd`) that appends every message it receives, parsed,
/// as one JSON line to a file. Killed when dropped.
pub(crate) struct SmtpSink {
    child: Child,
    pub(crate) port: u16,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the sink on `port` (0: any free port) and waits until it listens.
    pub(crate) fn start(port: u16) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("received.jsonl");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .args(["-W", "ignore", script, &port.to_string()])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the sink's first line");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the SMTP sink did not start: {line:?}")
            });
        SmtpSink {
            child,
            port,
            file,
            _dir: dir,
        }
    }

    pub(crate) fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("sink JSON line"))
            .collect()
    }

    /// Waits until at least `count` messages have arrived.
    pub(crate) async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                start.elapsed() < limit,
                "the SMTP server received {} of {count} messages within {limit:?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Configuration variables that point delivery at a plain-text relay on 127.0.0.1:`port`.
pub(crate) fn smtp_vars(port: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LATCHKEY_SMTP_HOST", "127.0.0.1".to_string()),
        ("LATCHKEY_SMTP_PORT", port.to_string()),
        ("LATCHKEY_SMTP_TLS", "none".to_string()),
        (
            "LATCHKEY_SMTP_FROM",
            "Acme Sign-in <login@acme.test>".to_string(),
        ),
    ]
}

pub(crate) fn as_refs<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn make_org(services: &App, slug: &str) -> Organization {
    orgs::create(
        services,
        &Actor::operator(),
        NewOrganization {
            slug,
            name: &format!("Org {slug}"),
        },
    )
    .await
    .expect("create organization")
}

/// An email whose body holds a one-time link and code, as the account flows send.
fn code_email(org: &Organization, to: &str, n: usize) -> OutgoingEmail {
    let mut email = OutgoingEmail::new(
        latchkey::time_now(),
        &org.id,
        to,
        &format!("Your sign-in code ({n})"),
        format!(
            "Hello,\n\nyour code is {n:06}-SECRET.\nOr follow https://id.example.test/verify?token=tok{n}SECRET\n\nGrüße ✓\n"
        ),
    );
    // Distinct creation times keep "oldest first" and "newest first" deterministic.
    email.created_at -= 100 - n as i64;
    email
}

async fn wait_until_sent(services: &App, ids: &[String], limit: Duration) {
    let start = Instant::now();
    loop {
        let mut all = true;
        for id in ids {
            let entry = services
                .db
                .system()
                .outbox_entry(id)
                .await
                .unwrap()
                .unwrap();
            all &= entry.status() == OutboxStatus::Sent;
        }
        if all {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "messages not marked sent within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------------
// The outbox contract, on SQLite and PostgreSQL.

async fn claims_leases_retries_and_listing(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let services = open_services(&db).await;
    let acme = make_org(&services, "acme").await;
    let beta = make_org(&services, "beta").await;
    let emails: Vec<OutgoingEmail> = (1..=3)
        .map(|n| code_email(&acme, &format!("user{n}@example.com"), n))
        .collect();
    for email in &emails {
        services
            .db
            .tenant(&email.org_id)
            .enqueue_email(email)
            .await
            .unwrap();
    }
    let other = code_email(&beta, "b@example.com", 4);
    services
        .db
        .tenant(&beta.id)
        .enqueue_email(&other)
        .await
        .unwrap();

    // Listing: newest first, by organization, limited; one entry by id; unknown ids are None.
    let all = services.db.system().list_outbox(100).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.email.id.as_str()).collect();
    assert_eq!(
        ids,
        [&other.id, &emails[2].id, &emails[1].id, &emails[0].id]
    );
    assert!(all.iter().all(|e| e.status() == OutboxStatus::Queued
        && e.attempts == 0
        && e.sent_at.is_none()
        && e.next_attempt_at == 0));
    let acme_only = services.db.tenant(&acme.id).list_outbox(2).await.unwrap();
    assert_eq!(acme_only.len(), 2);
    assert_eq!(acme_only[0].email, emails[2]);
    let entry = services
        .db
        .system()
        .outbox_entry(&emails[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.email, emails[0], "stored and read back unchanged");
    assert!(
        services
            .db
            .system()
            .outbox_entry("eml_missing")
            .await
            .unwrap()
            .is_none()
    );

    // Claims: oldest first, each message once while its lease runs.
    let now = time_now();
    let first = services
        .db
        .system()
        .claim_due_emails(now, now + 60, 2)
        .await
        .unwrap();
    let first_ids: Vec<&str> = first.iter().map(|e| e.email.id.as_str()).collect();
    assert_eq!(first_ids, [&emails[0].id, &emails[1].id]);
    let second = services
        .db
        .system()
        .claim_due_emails(now, now + 60, 10)
        .await
        .unwrap();
    let second_ids: BTreeSet<&str> = second.iter().map(|e| e.email.id.as_str()).collect();
    assert_eq!(
        second_ids,
        BTreeSet::from([emails[2].id.as_str(), other.id.as_str()])
    );
    assert!(
        services
            .db
            .system()
            .claim_due_emails(now, now + 60, 10)
            .await
            .unwrap()
            .is_empty(),
        "everything is claimed"
    );

    // Outcomes: sent, failed with a retry time, failed for good.
    services
        .db
        .system()
        .mark_email_sent(&emails[0].id, now)
        .await
        .unwrap();
    services
        .db
        .system()
        .mark_email_failed(&emails[1].id, "connection refused", now + 30, None)
        .await
        .unwrap();
    services
        .db
        .system()
        .mark_email_failed(&other.id, "recipient rejected", now, Some(now))
        .await
        .unwrap();
    let sent = services
        .db
        .system()
        .outbox_entry(&emails[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status(), OutboxStatus::Sent);
    assert_eq!(sent.sent_at, Some(now));
    let retry = services
        .db
        .system()
        .outbox_entry(&emails[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retry.status(), OutboxStatus::Queued);
    assert_eq!(retry.attempts, 1);
    assert_eq!(retry.last_error.as_deref(), Some("connection refused"));
    assert_eq!(retry.next_attempt_at, now + 30);
    let failed = services
        .db
        .system()
        .outbox_entry(&other.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status(), OutboxStatus::Failed);
    assert_eq!(failed.attempts, 1);
    // Marking a sent message failed (a late, duplicate outcome) changes nothing.
    services
        .db
        .system()
        .mark_email_failed(&emails[0].id, "late", now + 30, None)
        .await
        .unwrap();
    assert_eq!(
        services
            .db
            .system()
            .outbox_entry(&emails[0].id)
            .await
            .unwrap()
            .unwrap(),
        sent
    );

    // Before the retry time nothing is due except the message whose lease is still running (emails[2]).
    assert!(
        services
            .db
            .system()
            .claim_due_emails(now + 29, now + 89, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A lease that ran out (a sender that died) is taken over; the retry becomes due; sent and failed
    // messages never come back.
    let later = services
        .db
        .system()
        .claim_due_emails(now + 61, now + 121, 10)
        .await
        .unwrap();
    let later_ids: Vec<&str> = later.iter().map(|e| e.email.id.as_str()).collect();
    assert_eq!(later_ids, [&emails[1].id, &emails[2].id]);
    assert_eq!(later[0].attempts, 1, "a claim carries the attempts so far");
    services.db.close().await;
}

/// Several instances claiming at once never get the same message (PostgreSQL re-checks the claim on rows
/// it waited for; SQLite has one writer).
async fn concurrent_claimers_never_share_a_message(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let services = open_services(&db).await;
    let org = make_org(&services, "acme").await;
    let mut queued = BTreeSet::new();
    for n in 0..60 {
        let email = code_email(&org, &format!("u{n}@example.com"), n);
        services
            .db
            .tenant(&org.id)
            .enqueue_email(&email)
            .await
            .unwrap();
        queued.insert(email.id.to_string());
    }
    let instances = [
        services.clone(),
        open_services(&db).await,
        open_services(&db).await,
    ];
    let now = time_now();
    let mut tasks = Vec::new();
    for instance in &instances {
        for _ in 0..2 {
            let instance = instance.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = instance
                        .db
                        .system()
                        .claim_due_emails(now, now + 60, 3)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|e| e.email.id.into_string()));
                }
            }));
        }
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), distinct.len(), "a message was claimed twice");
    assert_eq!(distinct, queued, "every message was claimed");
    for instance in &instances {
        instance.db.close().await;
    }
}

backend_tests! {
    claims_leases_retries_and_listing => sqlite_outbox_claims_leases_retries_and_listing, postgres_outbox_claims_leases_retries_and_listing;
    concurrent_claimers_never_share_a_message => sqlite_outbox_concurrent_claimers_never_share_a_message, postgres_outbox_concurrent_claimers_never_share_a_message;
}

// ---------------------------------------------------------------------------------------------------
// Delivery over real SMTP.

/// The server started with `smtp_host` runs the worker; queueing and waking sends at once, and the SMTP
/// server receives the message with the configured sender, the recipient, subject and body.
async fn the_server_delivers_through_a_real_smtp_server(backend: Backend) {
    let sink = SmtpSink::start(0);
    let vars = smtp_vars(&sink.port.to_string());
    let Some(app) = TestApp::spawn_with(backend, &as_refs(&vars)).await else {
        return;
    };
    let services = &app.services;
    let org = make_org(services, "acme").await;
    let email = code_email(&org, "ann@example.com", 7);
    let queued_at = Instant::now();
    mail::queue(services, &email).await.unwrap();

    let received = sink.wait_for(1, Duration::from_secs(10)).await;
    println!(
        "{}: delivered {} ms after queueing",
        backend.name(),
        queued_at.elapsed().as_millis()
    );
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message["mail_from"], "login@acme.test");
    assert_eq!(message["rcpt_to"], serde_json::json!(["ann@example.com"]));
    assert_eq!(message["from"], "Acme Sign-in <login@acme.test>");
    assert_eq!(message["to"], "ann@example.com");
    assert_eq!(message["subject"], email.subject);
    assert_eq!(message["content_type"], "text/plain");
    assert_eq!(
        message["body"].as_str().unwrap().replace("\r\n", "\n"),
        email.body_text
    );
    assert_eq!(
        message["message_id"],
        format!("<{}@acme.test>", email.id),
        "the Message-ID derives from the outbox id"
    );
    wait_until_sent(services, &[email.id.to_string()], Duration::from_secs(5)).await;
    let entry = services
        .db
        .system()
        .outbox_entry(&email.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.attempts, 0);
    assert!(entry.last_error.is_none());
    assert!(entry.sent_at.unwrap() >= email.created_at);

    // Sent messages are not sent again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 1);
    app.stop().await;
}

/// The relay is down when messages are queued: they stay queued with their attempts and errors; once it
/// is up they are all delivered, each once, by the retry schedule alone.
async fn a_relay_that_is_down_at_first_gets_everything_later(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let port = free_port();
    let vars = smtp_vars(&port.to_string());
    let config = test_config_with(&db, &as_refs(&vars));
    let services = App::open(config).await.expect("services open");
    let org = make_org(&services, "acme").await;
    let mailer = Mailer::new(
        services.config.smtp.as_ref().unwrap(),
        services.config.smtp_from.clone(),
    )
    .unwrap();
    let options = DeliveryOptions {
        poll_interval: Duration::from_millis(100),
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(2),
        ..DeliveryOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = delivery::spawn(
        services.clone(),
        services.email_wakeup.clone(),
        mailer,
        options,
        stop_rx,
    );

    let emails: Vec<OutgoingEmail> = (1..=3)
        .map(|n| code_email(&org, &format!("user{n}@example.com"), n))
        .collect();
    for email in &emails {
        mail::queue(&services, email).await.unwrap();
    }
    let ids: Vec<String> = emails.iter().map(|e| e.id.to_string()).collect();

    // Every message fails at least once and stays queued, with the error kept.
    let start = Instant::now();
    loop {
        let entries = services.db.system().list_outbox(10).await.unwrap();
        if entries.len() == 3 && entries.iter().all(|e| e.attempts >= 1) {
            for entry in &entries {
                assert_eq!(entry.status(), OutboxStatus::Queued);
                assert!(entry.sent_at.is_none());
                let error = entry.last_error.as_deref().unwrap();
                assert!(!error.is_empty());
                assert!(!error.contains("SECRET"), "no body in the error: {error}");
                assert!(entry.next_attempt_at > entry.email.created_at);
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no failed attempts recorded: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The relay comes up (on the configured port); the backoff brings every message over.
    let sink = SmtpSink::start(port);
    let received = sink.wait_for(3, Duration::from_secs(15)).await;
    wait_until_sent(&services, &ids, Duration::from_secs(5)).await;
    let subjects: BTreeSet<String> = received
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = emails.iter().map(|e| e.subject.clone()).collect();
    assert_eq!(subjects, expected, "nothing queued is lost");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 3, "each message delivered once");
    for id in &ids {
        let entry = services
            .db
            .system()
            .outbox_entry(id)
            .await
            .unwrap()
            .unwrap();
        assert!(entry.attempts >= 1, "the failed attempts stay counted");
        assert!(entry.sent_at.is_some());
    }

    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops when told")
        .unwrap();
    services.db.close().await;
}

backend_tests! {
    the_server_delivers_through_a_real_smtp_server => sqlite_email_server_delivers_through_a_real_smtp_server, postgres_email_server_delivers_through_a_real_smtp_server;
    a_relay_that_is_down_at_first_gets_everything_later => sqlite_email_relay_down_at_first_gets_everything_later, postgres_email_relay_down_at_first_gets_everything_later;
}

/// After `max_attempts` failures a message is marked failed and kept; a recipient that is not an address
/// fails at once (retrying cannot help).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_gives_up_after_max_attempts_and_keeps_the_message() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let port = free_port();
    let vars = smtp_vars(&port.to_string());
    let services = App::open(test_config_with(&db, &as_refs(&vars)))
        .await
        .expect("services open");
    let org = make_org(&services, "acme").await;
    let mailer = Mailer::new(
        services.config.smtp.as_ref().unwrap(),
        services.config.smtp_from.clone(),
    )
    .unwrap();
    let options = DeliveryOptions {
        poll_interval: Duration::from_millis(100),
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(1),
        max_attempts: 2,
        ..DeliveryOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = delivery::spawn(
        services.clone(),
        services.email_wakeup.clone(),
        mailer,
        options,
        stop_rx,
    );
    let unreachable = code_email(&org, "ann@example.com", 1);
    let invalid = code_email(&org, "not an address", 2);
    mail::queue(&services, &unreachable).await.unwrap();
    mail::queue(&services, &invalid).await.unwrap();

    let start = Instant::now();
    loop {
        let a = services
            .db
            .system()
            .outbox_entry(&unreachable.id)
            .await
            .unwrap()
            .unwrap();
        let b = services
            .db
            .system()
            .outbox_entry(&invalid.id)
            .await
            .unwrap()
            .unwrap();
        if a.status() == OutboxStatus::Failed && b.status() == OutboxStatus::Failed {
            assert_eq!(a.attempts, 2);
            assert!(a.failed_at.is_some() && a.sent_at.is_none());
            assert_eq!(b.attempts, 1, "an invalid recipient is not retried");
            assert!(
                b.last_error
                    .as_deref()
                    .unwrap()
                    .contains("not a valid email address"),
                "{:?}",
                b.last_error
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not given up: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Failed messages are kept and not tried again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        services
            .db
            .system()
            .outbox_entry(&unreachable.id)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        2
    );
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .unwrap()
        .unwrap();
    services.db.close().await;
}

/// The real binary: `latchkey serve` with SMTP configured delivers what another process queued (found by
/// polling), says so in its logs without the body, codes or links, and `outbox list` shows it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latchkey_serve_delivers_and_logs_no_bodies() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let sink = SmtpSink::start(0);
    let mut env = db.env();
    for (key, value) in smtp_vars(&sink.port.to_string()) {
        env.insert(key.into(), value);
    }
    env.insert("LATCHKEY_LOG_LEVEL".into(), "debug".into());
    env.insert("LATCHKEY_LOG_FORMAT".into(), "json".into());
    cli_json(
        &["org", "create", "--slug", "acme", "--name", "Acme"],
        &env,
        None,
    );
    let port = free_port();
    let mut server = ServeProcess::start(db.data_dir(), port, &env);
    server.wait_ready(Duration::from_secs(10)).await;

    // Queued by another process (as a second instance or the CLI would): the poll finds it.
    let services = open_services(&db).await;
    let org = orgs::find(&services, "acme").await.unwrap();
    let email = code_email(&org, "ann@example.com", 3);
    services
        .db
        .tenant(&org.id)
        .enqueue_email(&email)
        .await
        .unwrap();
    services.db.close().await;

    let received = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received[0]["subject"], email.subject);
    let start = Instant::now();
    loop {
        let list = cli_json(&["outbox", "list"], &env, None);
        if list[0]["status"] == "sent" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    crate::helpers::send_signal(server.pid(), "TERM");
    let status = crate::helpers::wait_with_timeout(&mut server.child, Duration::from_secs(10))
        .expect("serve stops on SIGTERM");
    assert!(status.success(), "{}", server.log_text());
    let log = server.log_text();
    assert!(log.contains("email delivery started"), "{log}");
    assert!(log.contains("email sent"), "{log}");
    assert!(
        log.contains(email.id.as_str()),
        "the log names the message: {log}"
    );
    assert!(log.contains("email delivery stopped"), "{log}");
    for secret in ["SECRET", "000003", "tok3", "Grüße", &email.subject] {
        assert!(!log.contains(secret), "the log contains {secret:?}: {log}");
    }
}

// ---------------------------------------------------------------------------------------------------
// The development outbox: no smtp_host, messages stay queued and the CLI shows them.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_the_cli_shows_the_outbox() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = db.env();
    let services = open_services(&db).await;
    assert!(services.config.smtp.is_none());
    let acme = make_org(&services, "acme").await;
    let beta = make_org(&services, "beta").await;
    let first = code_email(&acme, "ann@example.com", 1);
    let second = code_email(&beta, "bob@example.com", 2);
    mail::queue(&services, &first).await.unwrap();
    mail::queue(&services, &second).await.unwrap();
    services.db.close().await;

    let list = cli_json(&["outbox", "list"], &env, None);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], second.id.as_str(), "newest first");
    assert_eq!(list[1]["id"], first.id.as_str());
    assert_eq!(list[1]["org"], "acme");
    assert_eq!(list[1]["recipient"], "ann@example.com");
    assert_eq!(list[1]["subject"], first.subject);
    assert_eq!(list[1]["status"], "queued");
    assert_eq!(list[1]["attempts"], 0);
    assert_eq!(list[1]["created_at"], first.created_at);
    assert!(
        list[1].get("body_text").is_none(),
        "the list leaves bodies out"
    );

    let only_acme = cli_json(&["outbox", "list", "--org", "acme"], &env, None);
    assert_eq!(only_acme.as_array().unwrap().len(), 1);
    assert_eq!(only_acme[0]["id"], first.id.as_str());
    let limited = cli_json(&["outbox", "list", "--limit", "1"], &env, None);
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(limited[0]["id"], second.id.as_str());

    let shown = cli_json(&["outbox", "show", &first.id], &env, None);
    assert_eq!(shown["id"], first.id.as_str());
    assert_eq!(shown["org"], "acme");
    assert_eq!(shown["recipient"], "ann@example.com");
    assert_eq!(shown["subject"], first.subject);
    assert_eq!(shown["body_text"], first.body_text);
    assert_eq!(shown["status"], "queued");

    // For people: the list is one line per message, `show` prints the whole message.
    let (code, text, stderr) = run_cli(&["outbox", "list"], &env, None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().nth(1).unwrap().contains(first.id.as_str()));
    assert!(text.contains("queued"));
    assert!(!text.contains("SECRET"), "no bodies in the list");
    let (code, text, stderr) = run_cli(&["outbox", "show", &first.id], &env, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains("To: ann@example.com"), "{text}");
    assert!(
        text.contains(&format!("Subject: {}", first.subject)),
        "{text}"
    );
    assert!(text.contains("From: no-reply@"), "{text}");
    assert!(text.ends_with(&format!("{}\n", first.body_text)), "{text}");

    // Mistakes: one line, exit 1 for a refused lookup, 2 for usage.
    for (args, expected, needle) in [
        (
            vec!["outbox", "show", "eml_doesnotexist"],
            1,
            "eml_doesnotexist",
        ),
        (vec!["outbox", "show", ""], 1, "not in the outbox"),
        (vec!["outbox", "list", "--org", "nope"], 1, "nope"),
        (vec!["outbox", "list", "--limit", "0"], 2, "--limit"),
        (vec!["outbox", "list", "--limit", "many"], 2, "--limit"),
        (vec!["outbox", "show"], 2, "ID"),
        (vec!["outbox", "bogus"], 2, "bogus"),
    ] {
        let (code, stdout, stderr) = run_cli(&args, &env, None);
        assert_eq!(code, expected, "{args:?}: stdout={stdout} stderr={stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        if expected == 1 {
            assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        }
    }
    let (code, _, stderr) = run_cli(
        &["--json", "outbox", "show", "eml_doesnotexist"],
        &env,
        None,
    );
    assert_eq!(code, 1);
    let error: Value = serde_json::from_str(stderr.trim()).expect("a JSON error");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("eml_doesnotexist")
    );
}
