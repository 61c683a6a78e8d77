//! Shared fixtures for the integration suite: real databases (a temporary SQLite file or a throw-away
//! PostgreSQL schema), the real HTTP server on a free port, and the real `latchkey` binary.
//!
//! Backend URLs come from the environment:
//! - `LATCHKEY_TEST_POSTGRES_URL` (for example `postgres://postgres@127.0.0.1:5432/test`)
//! - `LATCHKEY_TEST_REDIS_URL` (for example `redis://127.0.0.1:6379`)
//!
//! When one is missing, tests that need it print `SKIPPED (no LATCHKEY_TEST_…_URL)` and return, unless
//! `LATCHKEY_REQUIRE_BACKENDS=1`, in which case they panic.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use latchkey::app::App;
use latchkey::app::server::Server;
use latchkey::config::Config;
use latchkey::kernel::Clock;
use sqlx::Connection;

pub const POSTGRES_ENV: &str = "LATCHKEY_TEST_POSTGRES_URL";
pub const REDIS_ENV: &str = "LATCHKEY_TEST_REDIS_URL";
pub const REQUIRE_ENV: &str = "LATCHKEY_REQUIRE_BACKENDS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

fn backends_required() -> bool {
    std::env::var(REQUIRE_ENV)
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// The URL in `var`, or `None` after printing the skip line (panics instead when backends are required).
pub fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ => {
            if backends_required() {
                panic!("{REQUIRE_ENV}=1 but {var} is not set");
            }
            println!("SKIPPED (no {var})");
            None
        }
    }
}

/// The PostgreSQL server URL for tests, if configured.
pub fn postgres_url() -> Option<String> {
    backend_url(POSTGRES_ENV)
}

/// The Redis URL for tests, if configured.
pub fn redis_url() -> Option<String> {
    backend_url(REDIS_ENV)
}

/// A fresh 64-hex-character master key.
pub fn fresh_master_key() -> String {
    latchkey::crypto::MasterKey::generate().to_hex()
}

/// A random lower-case hex string of `bytes` bytes.
pub fn random_hex(bytes: usize) -> String {
    hex::encode(latchkey::crypto::random_bytes(bytes))
}

/// Appends `?options=-c search_path=<schema>` (URL-encoded) to a PostgreSQL URL.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A PostgreSQL schema that exists for one test and is dropped (CASCADE) when this guard drops, panics
/// included. The drop runs on a fresh thread with its own runtime, so it works inside and outside tokio.
pub struct PgSchema {
    pub admin_url: String,
    pub name: String,
}

impl PgSchema {
    pub async fn create(admin_url: &str) -> PgSchema {
        let name = format!("lk_test_{}", random_hex(8));
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test schema");
        let _ = conn.close().await;
        PgSchema {
            admin_url: admin_url.to_string(),
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async move {
                match sqlx::PgConnection::connect(&admin_url).await {
                    Ok(mut conn) => {
                        if let Err(e) =
                            sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                                .execute(&mut conn)
                                .await
                        {
                            eprintln!("warning: could not drop test schema {name}: {e}");
                        }
                        let _ = conn.close().await;
                    }
                    Err(e) => {
                        eprintln!("warning: could not connect to drop test schema {name}: {e}")
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A database for one test: a SQLite file in a temporary directory, or a PostgreSQL schema of its own.
/// It also owns the data directory and the master key that goes with the database.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    /// The master key this database is (or will be) set up with.
    pub master_key: String,
    /// Temporary directory: the data directory (and, for SQLite, where the database file lives).
    pub dir: tempfile::TempDir,
    /// The PostgreSQL schema, when the backend is PostgreSQL.
    pub schema: Option<PgSchema>,
}

impl TestDb {
    /// `None` when the backend is PostgreSQL and no test server is configured (the skip line is printed).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::Builder::new()
            .prefix("latchkey-it-")
            .tempdir()
            .expect("temporary directory");
        let master_key = fresh_master_key();
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
                Some(TestDb {
                    url,
                    backend,
                    master_key,
                    dir,
                    schema: None,
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_url()?;
                let schema = PgSchema::create(&admin_url).await;
                let url = with_search_path(&admin_url, &schema.name);
                let db = TestDb {
                    url,
                    backend,
                    master_key,
                    dir,
                    schema: Some(schema),
                };
                // The isolation relies on sqlx honouring the `options` URL parameter: check it, once per db.
                let current: String = db.pg_scalar("SELECT current_schema()::text").await;
                assert_eq!(
                    current,
                    db.schema_name().unwrap(),
                    "search_path from the URL options was not applied"
                );
                Some(db)
            }
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn schema_name(&self) -> Option<&str> {
        self.schema.as_ref().map(|s| s.name.as_str())
    }

    /// The SQLite database file (SQLite only).
    pub fn sqlite_path(&self) -> PathBuf {
        assert_eq!(
            self.backend,
            Backend::Sqlite,
            "sqlite_path on a PostgreSQL TestDb"
        );
        self.dir.path().join("latchkey.db")
    }

    /// Runs raw SQL (one or more statements) on a new connection that bypasses the product code.
    pub async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)?
                    .busy_timeout(Duration::from_secs(10));
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                let result = sqlx::Executor::execute(&mut conn, sqlx::raw_sql(sql)).await;
                let _ = conn.close().await;
                Ok(result?.rows_affected())
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let result = sqlx::Executor::execute(&mut conn, sqlx::raw_sql(sql)).await;
                let _ = conn.close().await;
                Ok(result?.rows_affected())
            }
        }
    }

    /// One i64 from a query run directly on the database.
    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect to sqlite");
                let v: i64 = sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql);
                let _ = conn.close().await;
                v
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect to postgres");
                let v: i64 = sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql);
                let _ = conn.close().await;
                v
            }
        }
    }

    async fn pg_scalar(&self, sql: &str) -> String {
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to postgres with the schema URL");
        let v: String = sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .expect(sql);
        let _ = conn.close().await;
        v
    }

    /// An outbox row's body as the server reads it: unsealed with this database's master key (bodies are
    /// sealed at rest), or `body_text` for a row without a sealed body.
    pub fn outbox_body(&self, id: &str, body_text: String, body_sealed: Option<Vec<u8>>) -> String {
        match body_sealed {
            None => body_text,
            Some(sealed) => {
                let key = latchkey::crypto::MasterKey::from_hex(&self.master_key).unwrap();
                let plain = key
                    .secret_box()
                    .open(&latchkey::email::body_aad(id), &sealed)
                    .expect("the outbox body opens with the database's master key");
                String::from_utf8(plain).expect("UTF-8 body")
            }
        }
    }

    /// The environment a `latchkey` process needs to use this database (and its data directory and key).
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("LATCHKEY_DATABASE_URL".into(), self.url.clone());
        env.insert(
            "LATCHKEY_DATA_DIR".into(),
            self.dir.path().display().to_string(),
        );
        env.insert("LATCHKEY_MASTER_KEY".into(), self.master_key.clone());
        env.insert("LATCHKEY_BCRYPT_COST".into(), "10".into());
        env.insert("LATCHKEY_LOG_LEVEL".into(), "warn".into());
        env
    }
}

/// Configuration for `db`, built through the real loader from an explicit environment.
pub fn test_config(db: &TestDb) -> Config {
    test_config_with(db, &[])
}

/// Like [`test_config`], with extra `LATCHKEY_*` variables on top (they win over the defaults here).
pub fn test_config_with(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let mut env = db.env();
    env.insert("LATCHKEY_LISTEN".into(), "127.0.0.1:0".into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Config::load_from(None, |name| env.get(name).cloned()).expect("test configuration is valid")
}

/// Opens the real services (migrating the database) for `db`.
pub async fn open_services(db: &TestDb) -> App {
    App::open(test_config(db)).await.expect("services open")
}

/// The id of the organization with this slug (for tests that created it through the CLI).
pub async fn org_id_of(services: &App, slug: &str) -> latchkey::kernel::OrgId {
    services
        .db
        .system()
        .org_by_slug(slug)
        .await
        .unwrap()
        .expect("organization exists")
        .id
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// The real application served over HTTP on 127.0.0.1, in-process, until dropped.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, also the configured public URL.
    pub base: String,
    pub addr: SocketAddr,
    pub services: App,
    /// The server's clock: `app.clock.advance(secs)` moves time forward for every domain operation, so
    /// a test crosses an expiry or a window without sleeping or rewriting timestamps in SQL.
    pub clock: Clock,
    /// A client that does not follow redirects.
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Declared last: the server stops before the database goes away.
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[]).await
    }

    /// Spawns with extra configuration variables (for example `LATCHKEY_REDIS_URL`).
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
        let db = TestDb::new(backend).await?;
        Some(Self::spawn_on(db, extra).await)
    }

    /// Spawns with the public URL `http://localhost:{port}`: WebAuthn needs a domain name as the relying
    /// party, never an IP address.
    pub async fn spawn_localhost(backend: Backend) -> Option<TestApp> {
        let db = TestDb::new(backend).await?;
        Some(Self::spawn_on_host(db, &[], "localhost").await)
    }

    /// Serves an existing database.
    pub async fn spawn_on(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
        Self::spawn_on_host(db, extra, "127.0.0.1").await
    }

    /// Serves an existing database on 127.0.0.1, with `host` in the public URL.
    async fn spawn_on_host(db: TestDb, extra: &[(&str, &str)], host: &str) -> TestApp {
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let base = format!("http://{host}:{port}");
            let mut vars: Vec<(&str, &str)> =
                vec![("LATCHKEY_LISTEN", &listen), ("LATCHKEY_PUBLIC_URL", &base)];
            vars.extend_from_slice(extra);
            let config = test_config_with(&db, &vars);
            let clock = Clock::adjustable();
            let services = App::open_with_clock(config, clock.clone())
                .await
                .expect("services open");
            let server = match Server::bind(services.clone()).await {
                Ok(server) => server,
                Err(e) => {
                    // Someone took the port between picking and binding: pick another.
                    last_error = Some(e.to_string());
                    continue;
                }
            };
            let addr = server.local_addr();
            assert_eq!(addr.port(), port);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(server.run(async move {
                let _ = rx.await;
            }));
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client");
            return TestApp {
                base,
                addr,
                services,
                clock,
                http,
                shutdown: Some(tx),
                task: Some(task),
                db,
            };
        }
        panic!("could not bind a test server: {last_error:?}");
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), task).await;
            let result = result
                .expect("server stops within 10 s")
                .expect("server task did not panic");
            result.expect("server ran without error");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The `latchkey` binary built for this test run.
pub fn latchkey_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_latchkey"))
}

/// A `latchkey` command with a clean environment: no inherited `LATCHKEY_*`, only PATH and HOME (plus `env`).
pub fn latchkey_command(cwd: &Path, env: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new(latchkey_bin());
    cmd.env_clear();
    cmd.env(
        "PATH",
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
    );
    cmd.env("HOME", cwd);
    cmd.env("USER", "latchkey-it");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.current_dir(cwd);
    cmd
}

/// Runs the CLI to completion; returns (exit code, stdout, stderr). The working directory is the data
/// directory from `env` when there is one, otherwise the system temporary directory.
pub fn run_cli(
    args: &[&str],
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
) -> (i32, String, String) {
    let cwd = env
        .get("LATCHKEY_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    run_cli_in(&cwd, args, env, stdin)
}

/// Runs the CLI in `cwd`; returns (exit code, stdout, stderr). A signal death is reported as code -1.
pub fn run_cli_in(
    cwd: &Path,
    args: &[&str],
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut cmd = latchkey_command(cwd, env);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn latchkey");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
        drop(pipe);
    }
    let out = child.wait_with_output().expect("wait for latchkey");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run_cli`] off the async runtime, so an in-process server keeps answering meanwhile.
pub async fn run_cli_async(
    args: &[&str],
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = env.clone();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, &env, stdin.as_deref())
    })
    .await
    .expect("cli task")
}

/// Runs a CLI command that must succeed with `--json`, and parses its standard output.
pub fn cli_json(
    args: &[&str],
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
) -> serde_json::Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let (code, stdout, stderr) = run_cli(&full, env, stdin);
    assert_eq!(
        code, 0,
        "latchkey {args:?} failed: stdout={stdout} stderr={stderr}"
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("latchkey {args:?} printed non-JSON ({e}): {stdout}"))
}

/// Sends SIGTERM (or another signal) to a process through `kill`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits up to `limit` for a child to exit.
pub fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `latchkey serve` child process, killed (SIGKILL) if still running when dropped.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub base: String,
    pub log: PathBuf,
}

impl ServeProcess {
    /// Starts `latchkey serve` in `cwd` on `port`, logging to `cwd/serve-<port>.log`.
    pub fn start(cwd: &Path, port: u16, env: &BTreeMap<String, String>) -> ServeProcess {
        let mut env = env.clone();
        env.insert("LATCHKEY_LISTEN".into(), format!("127.0.0.1:{port}"));
        Self::spawn(cwd, &env, port)
    }

    /// Starts `latchkey serve` without setting LATCHKEY_LISTEN: it should listen on 127.0.0.1:8080.
    pub fn start_without_listen(cwd: &Path, env: &BTreeMap<String, String>) -> ServeProcess {
        Self::spawn(cwd, env, 8080)
    }

    fn spawn(cwd: &Path, env: &BTreeMap<String, String>, port: u16) -> ServeProcess {
        let log = cwd.join(format!("serve-{port}-{}.log", random_hex(4)));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = latchkey_command(cwd, env);
        cmd.arg("serve")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = cmd.spawn().expect("spawn latchkey serve");
        ServeProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `/readyz` until it answers 200; returns how long that took, or panics after `limit`.
    pub async fn wait_ready(&mut self, limit: Duration) -> Duration {
        let start = std::time::Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        loop {
            let answer = client.get(format!("{}/readyz", self.base)).send().await;
            if answer.is_ok_and(|resp| resp.status() == 200) {
                return start.elapsed();
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "latchkey serve exited early with {status}; log:\n{}",
                    self.log_text()
                );
            }
            if start.elapsed() > limit {
                panic!(
                    "latchkey serve not ready after {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Stamps out one `#[tokio::test]` per backend from an `async fn body(backend: Backend)`:
/// `backend_tests! { body => sqlite_body, postgres_body; }`.
macro_rules! backend_tests {
    ($($body:ident => $sqlite:ident, $postgres:ident;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $sqlite() {
                $body($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $postgres() {
                $body($crate::helpers::Backend::Postgres).await;
            }
        )*
    };
}
