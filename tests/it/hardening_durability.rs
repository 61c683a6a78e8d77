//! Storage failures never become silent data loss, a revoked token is never active after a restart, and an
//! unavailable database is answered 503 with `Retry-After`, never 500.
//!
//! The full-disk test puts the SQLite data directory on a small tmpfs of its own (mounting needs root, as
//! in CI; elsewhere it prints a SKIPPED line unless `LATCHKEY_REQUIRE_BACKENDS=1`). The PostgreSQL
//! outage runs the server through a TCP proxy that the test cuts, so the shared PostgreSQL server keeps
//! serving everyone else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    Backend, REQUIRE_ENV, ServeProcess, TestApp, TestDb, cli_json, free_port, fresh_master_key,
    run_cli_async,
};
use crate::oauth_support::{basic, hidden_field, jwt_parts};

// ---------------------------------------------------------------------------------------------------------
// A small HTTP client for a server known only by its base URL (the real binary).

/// One answer, fully read.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    async fn read(resp: reqwest::Response) -> Reply {
        Reply {
            status: resp.status().as_u16(),
            retry_after: resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: resp.text().await.unwrap_or_default(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }

    /// True for a success, false for 503 with `Retry-After`; anything else (a 500 above all) fails the
    /// test.
    fn acknowledged(&self, what: &str) -> bool {
        match self.status {
            200..=299 => true,
            503 => {
                assert!(
                    self.retry_after.is_some(),
                    "{what}: 503 without Retry-After: {}",
                    self.body
                );
                false
            }
            other => panic!(
                "{what}: answered {other}, expected success or 503: {}",
                self.body
            ),
        }
    }
}

struct Site {
    http: reqwest::Client,
    base: String,
    slug: String,
    client_id: String,
    secret: String,
}

impl Site {
    fn new(base: &str, slug: &str, app: &Value) -> Site {
        Site {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: base.to_string(),
            slug: slug.to_string(),
            client_id: app["client_id"].as_str().unwrap().to_string(),
            secret: app["client_secret"].as_str().unwrap().to_string(),
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/o/{}{rest}", self.base, self.slug)
    }

    async fn as_client(&self, rest: &str, form: &[(&str, &str)]) -> Reply {
        let resp = self
            .http
            .post(self.url(rest))
            .header("authorization", basic(&self.client_id, &self.secret))
            .form(form)
            .send()
            .await
            .expect("POST");
        Reply::read(resp).await
    }

    /// A client-credentials token request.
    async fn token(&self) -> Reply {
        self.as_client("/token", &[("grant_type", "client_credentials")])
            .await
    }

    /// A fresh access token (asserted issued).
    async fn access_token(&self) -> String {
        let reply = self.token().await;
        assert_eq!(reply.status, 200, "token: {}", reply.body);
        reply.json()["access_token"].as_str().unwrap().to_string()
    }

    async fn revoke(&self, token: &str) -> Reply {
        self.as_client("/revoke", &[("token", token)]).await
    }

    async fn introspect(&self, token: &str) -> Reply {
        self.as_client("/introspect", &[("token", token)]).await
    }

    /// The sign-up form's CSRF token and the cookie that goes with it.
    async fn sign_up_form(&self) -> (String, String) {
        let resp = self.http.get(self.url("/signup")).send().await.unwrap();
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .collect::<Vec<_>>()
            .join("; ");
        let reply = Reply::read(resp).await;
        assert_eq!(reply.status, 200, "sign-up form: {}", reply.body);
        (hidden_field(&reply.body, "csrf"), cookie)
    }

    /// Submits the sign-up form (with a form fetched earlier by [`Site::sign_up_form`]).
    async fn sign_up(&self, form: &(String, String), email: &str) -> Reply {
        let (csrf, cookie) = form;
        let resp = self
            .http
            .post(self.url("/signup"))
            .header("origin", &self.base)
            .header("cookie", cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Durable Dana"),
                ("email", email),
                ("password", "a long enough password for sure"),
            ])
            .send()
            .await
            .expect("POST sign-up");
        Reply::read(resp).await
    }

    async fn readyz(&self) -> Reply {
        let resp = self
            .http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("GET /readyz");
        Reply::read(resp).await
    }

    /// Polls `/readyz` until it answers `status` (the write probe's outcome is reused for a second).
    async fn wait_readyz(&self, status: u16) -> Reply {
        let start = Instant::now();
        loop {
            let reply = self.readyz().await;
            if reply.status == status {
                return reply;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "/readyz still {} after 15 s: {}",
                reply.status,
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn jti(token: &str) -> String {
    jwt_parts(token).1["jti"].as_str().unwrap().to_string()
}

/// An organization and a confidential client-credentials application, made with the CLI.
fn org_and_client(env: &BTreeMap<String, String>, slug: &str) -> Value {
    cli_json(
        &["org", "create", "--slug", slug, "--name", "Hardened"],
        env,
        None,
    );
    // These tests sign up many addresses from one client address; the sign-up limit is not under test.
    cli_json(
        &[
            "org",
            "update",
            "--slug",
            slug,
            "--signup-per-ip-per-hour",
            "100000",
        ],
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
            "Service",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
        ],
        env,
        None,
    )
}

fn audit_actions(env: &BTreeMap<String, String>, slug: &str) -> Vec<String> {
    let events = cli_json(
        &["audit", "list", "--org", slug, "--limit", "100000"],
        env,
        None,
    );
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

fn user_emails(env: &BTreeMap<String, String>, slug: &str) -> Vec<String> {
    let users = cli_json(&["user", "list", "--org", slug], env, None);
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Item 1: a full disk.

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    mount_point: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (after printing why) where mounting is not allowed, unless backends are required (CI runs as
    /// root and must run the test).
    fn mount(size: &str) -> Option<Tmpfs> {
        let parent = tempfile::Builder::new()
            .prefix("latchkey-tmpfs-")
            .tempdir()
            .unwrap();
        let mount_point = parent.path().join("fs");
        std::fs::create_dir(&mount_point).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(&mount_point)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs {
                mount_point,
                _parent: parent,
            }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                    panic!("{REQUIRE_ENV}=1 but a tmpfs cannot be mounted (run as root): {why}");
                }
                println!("SKIPPED (cannot mount a tmpfs, needs root: {why})");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// Fills the filesystem of `dir` to the last byte with a file that [`std::fs::remove_file`] frees.
fn fill_disk(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let bytes = vec![0u8; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

/// Empties the SQLite write-ahead log into the database and truncates it, so that the next commit has to
/// grow the log (and so fails once the disk is full) instead of reusing space the log already holds.
async fn truncate_wal(db_url: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(db_url).await.unwrap();
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint ran to the end");
    let _ = conn.close().await;
}

async fn revoked_jtis_in_database(db_url: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(db_url).await.unwrap();
    let jtis: Vec<String> = sqlx::query_scalar("SELECT jti FROM revoked_access_tokens")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    jtis
}

/// What the server acknowledged, to be found again later.
#[derive(Default)]
struct Acknowledged {
    /// A token never revoked: active before and after, so "inactive" means revoked, not unknown.
    live: String,
    tokens: usize,
    sign_ups: Vec<String>,
    revoked: Vec<String>,
}

impl Acknowledged {
    /// Every acknowledged write is visible to another process (the CLI) and to the server itself.
    async fn assert_all_present(
        &self,
        site: &Site,
        env: &BTreeMap<String, String>,
        db_url: &str,
        when: &str,
    ) {
        let issued = audit_actions(env, &site.slug)
            .iter()
            .filter(|a| *a == "token.issued")
            .count();
        assert!(
            issued >= self.tokens,
            "{when}: {} tokens were issued but only {issued} token.issued events are in the log",
            self.tokens
        );
        let emails = user_emails(env, &site.slug);
        let missing: Vec<_> = self
            .sign_ups
            .iter()
            .filter(|e| !emails.contains(e))
            .collect();
        assert!(
            missing.is_empty(),
            "{when}: acknowledged sign-ups missing: {missing:?} (of {})",
            self.sign_ups.len()
        );
        let reply = site.introspect(&self.live).await;
        assert_eq!(
            reply.json()["active"],
            true,
            "{when}: a live token is active"
        );
        let stored = revoked_jtis_in_database(db_url).await;
        let mut resurrected = 0;
        for token in &self.revoked {
            assert!(
                stored.contains(&jti(token)),
                "{when}: an acknowledged revocation is not in the database"
            );
            let reply = site.introspect(token).await;
            assert_eq!(reply.status, 200, "{when}: introspect: {}", reply.body);
            if reply.json()["active"] != false {
                resurrected += 1;
            }
        }
        assert_eq!(
            resurrected, 0,
            "{when}: revoked tokens answered active by introspection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_loses_no_acknowledged_write() {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let data_dir = fs.mount_point.join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let port = free_port();
    let db_url = format!("sqlite://{}", data_dir.join("latchkey.db").display());
    let env: BTreeMap<String, String> = [
        ("LATCHKEY_DATABASE_URL", db_url.clone()),
        ("LATCHKEY_DATA_DIR", data_dir.display().to_string()),
        ("LATCHKEY_MASTER_KEY", fresh_master_key()),
        ("LATCHKEY_BCRYPT_COST", "10".into()),
        ("LATCHKEY_LOG_LEVEL", "warn".into()),
        // One issuer across restarts, so tokens stay valid at the restarted server.
        ("LATCHKEY_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let app = org_and_client(&env, "full");
    let work = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start(work.path(), port, &env);
    server.wait_ready(Duration::from_secs(20)).await;
    let site = Site::new(&server.base, "full", &app);
    let form = site.sign_up_form().await;

    let mut to_revoke = Vec::new();
    for _ in 0..12 {
        to_revoke.push(site.access_token().await);
    }
    let mut acked = Acknowledged {
        live: site.access_token().await,
        tokens: 13,
        ..Default::default()
    };

    // The disk fills up.
    truncate_wal(&db_url).await;
    let filler = fill_disk(&fs.mount_point);
    let mut refused = (0, 0, 0);
    let (revoke_while_full, revoke_after) = to_revoke.split_at(6);
    for (i, token) in revoke_while_full.iter().enumerate() {
        if site.token().await.acknowledged("token while full") {
            acked.tokens += 1;
        } else {
            refused.0 += 1;
        }
        let email = format!("full-{i}@example.com");
        if site
            .sign_up(&form, &email)
            .await
            .acknowledged("sign-up while full")
        {
            acked.sign_ups.push(email);
        } else {
            refused.1 += 1;
        }
        if site
            .revoke(token)
            .await
            .acknowledged("revocation while full")
        {
            acked.revoked.push(token.clone());
        } else {
            refused.2 += 1;
        }
    }
    println!("while full: refused (503) tokens/sign-ups/revocations = {refused:?}");
    assert!(
        refused.0 > 0 && refused.1 > 0 && refused.2 > 0,
        "the full disk refused writes of every kind: {refused:?}"
    );
    let ready = site.wait_readyz(503).await;
    assert!(ready.retry_after.is_some());
    assert_eq!(ready.json()["checks"]["database_writes"], "failing");

    // Space comes back: writes commit again, at once.
    std::fs::remove_file(&filler).unwrap();
    site.wait_readyz(200).await;
    for (i, token) in revoke_after.iter().enumerate() {
        let reply = site.token().await;
        assert_eq!(
            reply.status, 200,
            "token after space is back: {}",
            reply.body
        );
        acked.tokens += 1;
        let email = format!("after-{i}@example.com");
        let reply = site.sign_up(&form, &email).await;
        assert_eq!(
            reply.status, 200,
            "sign-up after space is back: {}",
            reply.body
        );
        acked.sign_ups.push(email);
        let reply = site.revoke(token).await;
        assert_eq!(
            reply.status, 200,
            "revocation after space is back: {}",
            reply.body
        );
        acked.revoked.push(token.clone());
    }

    // Other processes see every acknowledged write while the server serves, and the chain verifies.
    acked
        .assert_all_present(&site, &env, &db_url, "while serving")
        .await;
    let (code, stdout, stderr) =
        run_cli_async(&["--json", "audit", "verify", "--org", "full"], &env, None).await;
    assert_eq!(code, 0, "audit verify while serving: {stdout} {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");

    // And after a crash and a restart, every acknowledged write is still there.
    crate::helpers::send_signal(server.pid(), "KILL");
    crate::helpers::wait_with_timeout(&mut server.child, Duration::from_secs(5)).expect("killed");
    drop(server);
    let mut restarted = ServeProcess::start(work.path(), free_port(), &env);
    restarted.wait_ready(Duration::from_secs(20)).await;
    let site = Site::new(&restarted.base, "full", &app);
    acked
        .assert_all_present(&site, &env, &db_url, "after a restart")
        .await;
    let report = cli_json(&["audit", "verify", "--org", "full"], &env, None);
    assert_eq!(report["ok"], true, "{report}");
    drop(restarted);
    drop(fs);
}

// ---------------------------------------------------------------------------------------------------------
// Item 2: revoked tokens across restarts.

backend_tests! {
    revoked_tokens_are_inactive_from_the_first_request_after_each_restart => sqlite_revoked_tokens_are_inactive_from_the_first_request_after_each_restart, postgres_revoked_tokens_are_inactive_from_the_first_request_after_each_restart;
}

async fn revoked_tokens_are_inactive_from_the_first_request_after_each_restart(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let mut env = db.env();
    let first_port = free_port();
    // One issuer across restarts, so tokens stay valid at the restarted server.
    env.insert(
        "LATCHKEY_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{first_port}"),
    );
    let app = org_and_client(&env, "revoked");
    let mut server = ServeProcess::start(db.data_dir(), first_port, &env);
    server.wait_ready(Duration::from_secs(20)).await;
    let site = Site::new(&server.base, "revoked", &app);
    let mut revoked = Vec::new();
    let mut live = Vec::new();
    for i in 0..40 {
        let token = site.access_token().await;
        if i % 4 == 0 {
            live.push(token);
        } else {
            let reply = site.revoke(&token).await;
            assert_eq!(reply.status, 200, "revoke: {}", reply.body);
            revoked.push(token);
        }
    }
    // Many more revoked tokens, as a busy deployment has: loading them takes a moment.
    let far = latchkey::time_now() + 3600;
    let filler = match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) \
             INSERT INTO revoked_access_tokens (jti, expires_at) SELECT 'filler-' || i, {far} FROM n"
        ),
        Backend::Postgres => format!(
            "INSERT INTO revoked_access_tokens (jti, expires_at) \
             SELECT 'filler-' || i, {far} FROM generate_series(1, 200000) AS i"
        ),
    };
    db.exec(&filler).await.unwrap();

    let mut active_after_restart = 0;
    for restart in 1..=3 {
        crate::helpers::send_signal(server.pid(), "KILL");
        crate::helpers::wait_with_timeout(&mut server.child, Duration::from_secs(5))
            .expect("killed");
        drop(server);
        let port = free_port();
        server = ServeProcess::start(db.data_dir(), port, &env);
        // The very first moment the port takes connections, every revoked token is asked about at once.
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "server did not listen; log:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let site = Site::new(&server.base, "revoked", &app);
        let answers =
            futures_util::future::join_all(revoked.iter().map(|t| site.introspect(t))).await;
        for reply in &answers {
            assert_eq!(reply.status, 200, "introspect: {}", reply.body);
            if reply.json()["active"] != false {
                active_after_restart += 1;
            }
        }
        println!(
            "restart {restart}: {} of {} revoked tokens answered active",
            answers
                .iter()
                .filter(|r| r.json()["active"] != false)
                .count(),
            revoked.len()
        );
        for token in &live {
            let reply = site.introspect(token).await;
            assert_eq!(reply.json()["active"], true, "a live token stays active");
        }
        assert_eq!(site.readyz().await.status, 200);
    }
    assert_eq!(
        active_after_restart, 0,
        "revoked tokens were answered active right after a restart"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Item 3: PostgreSQL unavailable.

/// A TCP proxy in front of PostgreSQL. `cut` drops every proxied connection and closes each new one at
/// once, as a database that went away; `restore` lets connections through again.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let cut_flag = cut.clone();
        let cuts = generation.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if cut_flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut_signal = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_signal.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            generation,
            task,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_answers_503_with_retry_after_on_token_sign_up_and_revoke() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let env = db.env();
    let app = org_and_client(&env, "outage");
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .expect("the test PostgreSQL URL names an IP address");
    let proxy = Proxy::start(upstream).await;
    url.set_port(Some(proxy.addr.port())).unwrap();
    let mut proxied = env.clone();
    proxied.insert("LATCHKEY_DATABASE_URL".into(), url.to_string());
    let mut server = ServeProcess::start(db.data_dir(), free_port(), &proxied);
    server.wait_ready(Duration::from_secs(20)).await;
    let site = Site::new(&server.base, "outage", &app);
    let form = site.sign_up_form().await;
    let tokens = [site.access_token().await, site.access_token().await];
    let reply = site.sign_up(&form, "before@example.com").await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    proxy.cut();
    for round in 0..3 {
        for (what, reply) in [
            ("token", site.token().await),
            (
                "sign-up",
                site.sign_up(&form, &format!("during-{round}@example.com"))
                    .await,
            ),
            ("revocation", site.revoke(&tokens[round % 2]).await),
        ] {
            assert_eq!(
                reply.status, 503,
                "{what} with the database unreachable: {}",
                reply.body
            );
            assert!(
                reply.retry_after.is_some(),
                "{what}: 503 without Retry-After"
            );
            // OAuth endpoints answer RFC 6749 JSON; once the cached organization record has expired
            // (5 s) its lookup fails first and is answered as problem JSON, 503 all the same.
            if what != "sign-up" {
                let body = reply.json();
                match body.get("error") {
                    Some(error) => assert_eq!(error, "temporarily_unavailable", "{what}"),
                    None => assert_eq!(body["status"], 503, "{what}: {body}"),
                }
            }
        }
    }
    let ready = site.wait_readyz(503).await;
    assert!(ready.retry_after.is_some());

    proxy.restore();
    site.wait_readyz(200).await;
    let reply = site.token().await;
    assert_eq!(
        reply.status, 200,
        "token once the database is back: {}",
        reply.body
    );
    let reply = site.revoke(&tokens[0]).await;
    assert_eq!(
        reply.status, 200,
        "revocation once the database is back: {}",
        reply.body
    );
    let reply = site.sign_up(&form, "after@example.com").await;
    assert_eq!(
        reply.status, 200,
        "sign-up once the database is back: {}",
        reply.body
    );
    assert_eq!(
        user_emails(&env, "outage")
            .iter()
            .filter(|e| e.starts_with("during-"))
            .count(),
        0,
        "nothing refused was written"
    );
    drop(server);
}

// ---------------------------------------------------------------------------------------------------------
// Item 21: database file modes.

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = crate::oauth_support::fixture(&app).await;
    let db_path = app.db.sqlite_path();
    let mode = |suffix: &str| {
        let mut path = db_path.clone().into_os_string();
        path.push(suffix);
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{path:?}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(
            mode(suffix),
            0o600,
            "latchkey.db{suffix} after the server started and wrote ({})",
            fx.org.slug
        );
    }

    // Files left readable by an older version are tightened at the next start.
    let env = app.db.env();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db_path.clone().into_os_string();
        path.push(suffix);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (code, _, stderr) = run_cli_async(&["org", "list"], &env, None).await;
    assert_eq!(code, 0, "{stderr}");
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "latchkey.db{suffix} after a restart");
    }
}
