//! Two `latchkey serve` processes sharing PostgreSQL and Redis behave as one: sign-in limits are shared,
//! a revocation made through one is honoured by the other, and when Redis stops both keep serving with
//! `X-Auth-Degraded: 1`, recover when it returns, and lose nothing written meanwhile.
//!
//! The test runs its own `redis-server` on a free port, so stopping it cannot disturb other tests.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, ServeProcess, TestDb, cli_json, free_port, run_cli};

struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let until = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "private redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// Starts an authorization request on `base` and returns (req id, csrf token, cookie header).
async fn login_form(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
) -> (String, String, String) {
    let start = http
        .get(format!(
            "{base}/o/shared/authorize?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb\
             &scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        ))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_string();
    let page = http.get(format!("{base}{location}")).send().await.unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let body = page.text().await.unwrap();
    (hidden(&body, "req"), hidden(&body, "csrf"), cookie)
}

async fn try_password(
    http: &reqwest::Client,
    base: &str,
    origin: &str,
    form: &(String, String, String),
    password: &str,
) -> StatusCode {
    http.post(format!("{base}/o/shared/login"))
        .header("origin", origin)
        .header("cookie", &form.2)
        .form(&[
            ("req", form.0.as_str()),
            ("csrf", form.1.as_str()),
            ("email", "shared@example.com"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

async fn degraded(http: &reqwest::Client, base: &str) -> bool {
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "liveness never depends on Redis"
    );
    r.headers().get("x-auth-degraded").is_some()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_limits_and_revocations_and_survive_a_redis_outage() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let mut redis = PrivateRedis::start(free_port());
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let mut env: BTreeMap<String, String> = db.env();
    // Behind a load balancer every instance has the same public URL.
    env.insert("LATCHKEY_PUBLIC_URL".into(), base_a.clone());
    env.insert(
        "LATCHKEY_REDIS_URL".into(),
        format!("redis://127.0.0.1:{}", redis.port),
    );
    cli_json(
        &["org", "create", "--slug", "shared", "--name", "Shared"],
        &env,
        None,
    );
    let app = cli_json(
        &[
            "app",
            "create",
            "--org",
            "shared",
            "--name",
            "web",
            "--type",
            "confidential",
            "--first-party",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--grant",
            "authorization_code,refresh_token,client_credentials",
        ],
        &env,
        None,
    );
    let (code, _, err) = run_cli(
        &[
            "user",
            "create",
            "--org",
            "shared",
            "--email",
            "shared@example.com",
            "--password-stdin",
        ],
        &env,
        Some("the right password 1\n"),
    );
    assert_eq!(code, 0, "{err}");
    let client_id = app["client_id"].as_str().unwrap().to_string();
    let secret = app["client_secret"].as_str().unwrap().to_string();

    let mut a = ServeProcess::start(db.data_dir(), port_a, &env);
    let mut b = ServeProcess::start(db.data_dir(), port_b, &env);
    a.wait_ready(Duration::from_secs(20)).await;
    b.wait_ready(Duration::from_secs(20)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // 1. Sign-in limits are shared: 3 wrong passwords on A and 2 on B use up the 5 attempts for both.
    let form = login_form(&http, &base_a, &client_id).await;
    for _ in 0..3 {
        assert_eq!(
            try_password(&http, &base_a, &base_a, &form, "wrong password 1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..2 {
        assert_eq!(
            try_password(&http, &base_b, &base_a, &form, "wrong password 1").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        try_password(&http, &base_a, &base_a, &form, "the right password 1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        try_password(&http, &base_b, &base_a, &form, "the right password 1").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // 2. A refresh token revoked through A is refused by B at once; so is its grant's access token; and
    // a browser session signed out on A is refused by B at once.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
    );
    let (tokens, session_cookie): (Value, String) = {
        // A second account (the first is rate-limited now) signs in through B and resumes on A.
        let user2 = run_cli(
            &[
                "user",
                "create",
                "--org",
                "shared",
                "--email",
                "second@example.com",
                "--password-stdin",
                "--verified",
            ],
            &env,
            Some("another password 12\n"),
        );
        assert_eq!(user2.0, 0, "{}", user2.2);
        let form = login_form(&http, &base_b, &client_id).await;
        let signed_in = http
            .post(format!("{base_b}/o/shared/login"))
            .header("origin", &base_a)
            .header("cookie", &form.2)
            .form(&[
                ("req", form.0.as_str()),
                ("csrf", form.1.as_str()),
                ("email", "second@example.com"),
                ("password", "another password 12"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let session_cookie = signed_in.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let resume = signed_in.headers()["location"]
            .to_str()
            .unwrap()
            .to_string();
        // Resume on the other instance: the pending request and the session live in the shared database.
        let back = http
            .get(format!("{base_a}{resume}"))
            .header("cookie", &session_cookie)
            .send()
            .await
            .unwrap();
        let location = back.headers()["location"].to_str().unwrap().to_string();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        http.post(format!("{base_b}/o/shared/token"))
            .header("authorization", &basic)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "https://app.example.com/cb"),
                (
                    "code_verifier",
                    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                ),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .map(|tokens| (tokens, session_cookie))
            .unwrap()
    };
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let introspect = async |base: &str, token: &str| -> Value {
        http.post(format!("{base}/o/shared/introspect"))
            .header("authorization", &basic)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    assert_eq!(introspect(&base_b, access).await["active"], true);
    let revoked = http
        .post(format!("{base_a}/o/shared/revoke"))
        .header("authorization", &basic)
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let refused = http
        .post(format!("{base_b}/o/shared/token"))
        .header("authorization", &basic)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::BAD_REQUEST,
        "B refuses the refresh token revoked on A, at once"
    );
    assert_eq!(
        introspect(&base_b, access).await["active"],
        false,
        "and the grant's access token, at once"
    );

    // An access token revoked on A (RFC 7009) is refused by B at once: the revocation is announced
    // through Redis rather than waiting for B's periodic database refresh.
    for _ in 0..5 {
        let issued: Value = http
            .post(format!("{base_a}/o/shared/token"))
            .header("authorization", &basic)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = issued["access_token"].as_str().unwrap();
        assert_eq!(introspect(&base_b, token).await["active"], true);
        let revoked = http
            .post(format!("{base_a}/o/shared/revoke"))
            .header("authorization", &basic)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::OK);
        // Allow the announcement a moment to cross Redis, far less than the 2 s database refresh.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            introspect(&base_b, token).await["active"],
            false,
            "B refuses it at once"
        );
    }

    // The browser session (signed in through B) works on both; signed out on A, B refuses it at once.
    let account = async |base: &str| {
        http.get(format!("{base}/o/shared/account"))
            .header("cookie", &session_cookie)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(account(&base_b).await.status(), StatusCode::OK);
    let page = account(&base_a).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let signed_out = http
        .post(format!("{base_a}/o/shared/account/signout"))
        .header("origin", &base_a)
        .header("cookie", &session_cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::OK);
    let refused = account(&base_b).await;
    assert_eq!(
        refused.status(),
        StatusCode::SEE_OTHER,
        "B sends the signed-out browser to sign in again"
    );

    // 3. Redis stops: both instances keep serving, say they are degraded, and lose nothing written now.
    assert!(!degraded(&http, &base_a).await && !degraded(&http, &base_b).await);
    redis.stop();
    wait_for("A degraded", Duration::from_secs(5), async || {
        degraded(&http, &base_a).await
    })
    .await;
    wait_for("B degraded", Duration::from_secs(5), async || {
        degraded(&http, &base_b).await
    })
    .await;
    let during: Value = http
        .post(format!("{base_a}/o/shared/token"))
        .header("authorization", &basic)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let during_token = during["access_token"]
        .as_str()
        .expect("tokens are still issued")
        .to_string();
    let ready: Value = http
        .get(format!("{base_b}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "degraded");
    let third = run_cli(
        &[
            "user",
            "create",
            "--org",
            "shared",
            "--email",
            "third@example.com",
        ],
        &env,
        None,
    );
    assert_eq!(third.0, 0, "{}", third.2);

    // Redis returns: the header goes away without restarting Latchkey, and what was written is there.
    let mut redis = PrivateRedis::start(redis.port);
    wait_for("A recovered", Duration::from_secs(5), async || {
        !degraded(&http, &base_a).await
    })
    .await;
    wait_for("B recovered", Duration::from_secs(5), async || {
        !degraded(&http, &base_b).await
    })
    .await;
    assert_eq!(introspect(&base_b, &during_token).await["active"], true);
    let users = cli_json(&["user", "list", "--org", "shared"], &env, None);
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "third@example.com")
    );
    let audit = cli_json(&["audit", "verify", "--org", "shared"], &env, None);
    assert_eq!(audit["ok"], true);
    redis.stop();
    drop((a, b));
}
