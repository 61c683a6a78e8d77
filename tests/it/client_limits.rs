//! Per-client rates on the token and introspection endpoints (sliding-window counters): a client over its
//! rate gets 429 with an OAuth error body and `Retry-After`/`RateLimit` headers, other clients are not
//! affected, and the refusal is audited once per window rather than once per refused request. In memory
//! and in real Redis, where two concurrent bursts cannot slip past the limit between them.

use latchkey::apps::GrantType;
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, redis_url};
use crate::oauth_support::*;

async fn service_client(app: &TestApp, fx: &Fixture) -> Client {
    let mut input = new_app(latchkey::apps::ClientType::Confidential);
    input.grant_types = vec![GrantType::ClientCredentials];
    input.redirect_uris.clear();
    input.post_logout_redirect_uris.clear();
    register(app, fx, input).await
}

async fn client_credentials(app: &TestApp, fx: &Fixture, client: &Client) -> Answer {
    token(app, fx, client, &[("grant_type", "client_credentials")]).await
}

async fn rate_limited_audits(app: &TestApp, fx: &Fixture, policy: &str) -> i64 {
    app.db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE org_id = '{}' AND action = 'rate_limited' \
             AND after_state LIKE '%\"policy\":\"{policy}\"%'",
            fx.org.id
        ))
        .await
}

fn assert_oauth_429(answer: &Answer, policy: &str, limit: u32) {
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert_eq!(answer.json()["error"], "temporarily_unavailable");
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        answer.header("ratelimit-policy").unwrap(),
        format!("\"{policy}\";q={limit};w=60")
    );
    assert!(answer.header("ratelimit").unwrap().contains("r=0"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

async fn token_and_introspection_rates_are_per_client(app: TestApp) {
    let fx = fixture(&app).await;
    set_org_settings(&app, &fx.org, |s| {
        s.rate_limits.token_requests_per_client_per_minute = 6;
        s.rate_limits.introspections_per_client_per_minute = 4;
    })
    .await;
    let busy = service_client(&app, &fx).await;
    let other = service_client(&app, &fx).await;

    // Six token requests fit, in two concurrent bursts of five; the rest are refused.
    let burst = |n: usize| {
        let (app, fx, busy) = (&app, &fx, &busy);
        futures_util::future::join_all((0..n).map(move |_| client_credentials(app, fx, busy)))
    };
    let mut answers = burst(5).await;
    answers.extend(burst(5).await);
    let issued: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .collect();
    assert_eq!(issued.len(), 6, "exactly the rate is let through");
    for refused in answers.iter().filter(|a| a.status != StatusCode::OK) {
        assert_oauth_429(refused, "token", 6);
    }
    // Another client of the same organization is not affected.
    let fine = client_credentials(&app, &fx, &other).await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.body);
    assert_eq!(
        rate_limited_audits(&app, &fx, "token").await,
        1,
        "four refusals, one audit entry for the window"
    );

    // Introspection is counted separately, per client.
    let access = issued[0].json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..4 {
        assert_eq!(introspect(&app, &fx, &busy, &access).await["active"], true);
    }
    let refused = post_as(
        &app,
        &fx.path("/introspect"),
        &busy,
        &[("token", &access)],
        &[],
    )
    .await;
    assert_oauth_429(&refused, "introspection", 4);
    assert_eq!(rate_limited_audits(&app, &fx, "introspection").await, 1);
    // The other client's introspections are its own (it learns nothing of busy's token, as before).
    assert_eq!(
        introspect(&app, &fx, &other, &access).await["active"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_and_introspection_rates_are_per_client_in_memory() {
    token_and_introspection_rates_are_per_client(TestApp::spawn(Backend::Sqlite).await.unwrap())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_and_introspection_rates_are_per_client_with_redis() {
    let Some(url) = redis_url() else { return };
    let app = TestApp::spawn_with(Backend::Sqlite, &[("LATCHKEY_REDIS_URL", &url)])
        .await
        .unwrap();
    token_and_introspection_rates_are_per_client(app).await;
}

/// Client-credentials issuances are audited through the group-commit writer, which gathers the events of
/// concurrent requests into one transaction. Every token that was answered is in the log exactly once,
/// and the hash chain still verifies, on both backends.
async fn every_concurrent_client_credentials_token_is_audited_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = service_client(&app, &fx).await;
    let answers =
        futures_util::future::join_all((0..40).map(|_| client_credentials(&app, &fx, &client)))
            .await;
    let mut issued_jtis = std::collections::BTreeSet::new();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let (_, claims) = jwt_parts(answer.json()["access_token"].as_str().unwrap());
        issued_jtis.insert(claims["jti"].as_str().unwrap().to_string());
    }
    assert_eq!(issued_jtis.len(), 40);
    let events = app
        .services
        .db
        .tenant(&fx.org.id)
        .audit_events(0, 100_000)
        .await
        .unwrap();
    let audited = events.iter().filter(|e| e.action == "token.issued").count();
    assert_eq!(audited, 40, "one audit entry per answered token");
    let mut chain = latchkey::audit::ChainVerifier::new(&app.services.audit_keys);
    chain
        .feed(&events)
        .expect("the chain verifies across the batches");
    chain
        .finish()
        .expect("the chain verifies across the batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_concurrent_client_credentials_token_is_audited_once_sqlite() {
    every_concurrent_client_credentials_token_is_audited_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_concurrent_client_credentials_token_is_audited_once_postgres() {
    every_concurrent_client_credentials_token_is_audited_once(Backend::Postgres).await;
}
