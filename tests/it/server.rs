//! The HTTP edge, served for real on 127.0.0.1 and spoken to with an HTTP client.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, redis_url};

async fn json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .expect("ASCII header")
}

backend_tests! {
    healthz_and_readyz_answer_ok_on_the_backend => sqlite_healthz_and_readyz_answer_ok_on_the_backend, postgres_healthz_and_readyz_answer_ok_on_the_backend;
}

async fn healthz_and_readyz_answer_ok_on_the_backend(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "content-type").starts_with("application/json"));
    assert_eq!(json(resp).await, serde_json::json!({"status": "ok"}));

    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json(resp).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["database_backend"], backend.name());
    assert_eq!(body["checks"]["redis"], "not_configured");
    assert_eq!(
        app.services.config.public_base(),
        app.base,
        "the public URL is the real listening address"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_route_is_a_404_problem_json() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let resp = app.get("/no/such/endpoint").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&resp, "content-type"), "application/problem+json");
    let body = json(resp).await;
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "Not Found");
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn wrong_method_on_healthz_is_a_405_problem_json() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for method in [
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
    ] {
        let resp = app
            .http
            .request(method.clone(), app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(
            header(&resp, "content-type"),
            "application/problem+json",
            "{method}"
        );
        assert!(
            header(&resp, "allow").contains("GET"),
            "405 says which methods are allowed"
        );
        let body = json(resp).await;
        assert_eq!(body["status"], 405);
    }
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let post_healthz = app.http.post(app.url("/healthz")).send().await.unwrap();
    let responses = vec![
        app.get("/healthz").await,
        app.get("/readyz").await,
        app.get("/missing").await,
        post_healthz,
    ];
    for resp in &responses {
        let path = resp.url().path().to_string();
        assert_eq!(header(resp, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(resp, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(resp, "referrer-policy"), "no-referrer", "{path}");
        let csp = header(resp, "content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        // Plain-http public URL: no HSTS.
        assert!(
            resp.headers().get("strict-transport-security").is_none(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    // TestApp uses its http base as public URL; serve by hand with an https public URL instead.
    let db = crate::helpers::TestDb::new(Backend::Sqlite).await.unwrap();
    let config = crate::helpers::test_config_with(
        &db,
        &[("LATCHKEY_PUBLIC_URL", "https://id.example.test")],
    );
    let services = latchkey::app::App::open(config).await.unwrap();
    let server = latchkey::app::server::Server::bind(services).await.unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let resp = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    let hsts = header(&resp, "strict-transport-security");
    assert!(
        hsts.contains("max-age=") && hsts.contains("includeSubDomains"),
        "{hsts}"
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn every_response_has_a_fresh_request_id_that_clients_cannot_choose() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut ids = BTreeSet::new();
    for path in ["/healthz", "/healthz", "/readyz", "/missing", "/missing"] {
        let resp = app.get(path).await;
        let id = header(&resp, "x-request-id").to_string();
        assert!(!id.is_empty(), "{path}");
        assert!(ids.insert(id.clone()), "request id {id} repeated");
    }
    assert_eq!(ids.len(), 5);
}

#[tokio::test]

async fn a_client_supplied_request_id_is_replaced_by_a_fresh_one() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let mut ids = BTreeSet::new();
    for _ in 0..2 {
        let resp = app
            .http
            .get(app.url("/healthz"))
            .header("x-request-id", "forged-id")
            .send()
            .await
            .unwrap();
        let id = header(&resp, "x-request-id").to_string();
        assert_ne!(
            id, "forged-id",
            "an incoming X-Request-Id must not be trusted (log forging, collisions)"
        );
        ids.insert(id);
    }
    assert_eq!(
        ids.len(),
        2,
        "two requests with the same forged id still get distinct ids"
    );
}

#[tokio::test]
async fn readyz_reports_degraded_but_stays_in_rotation_when_the_configured_redis_is_unreachable() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("LATCHKEY_REDIS_URL", "redis://127.0.0.1:1")],
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let resp = app.get("/readyz").await;
    let took = started.elapsed();
    // Degraded mode keeps instances serving; a 503 would make the load balancer drain them all.
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json(resp).await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"], "unreachable");
    assert_eq!(body["checks"]["database"], "ok");
    assert!(
        took < std::time::Duration::from_secs(5),
        "readiness answers promptly even when Redis is down: {took:?}"
    );
    // Liveness does not depend on Redis.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_200_with_a_reachable_redis() {
    let Some(redis) = redis_url() else { return };
    let app = TestApp::spawn_with(Backend::Sqlite, &[("LATCHKEY_REDIS_URL", &redis)])
        .await
        .unwrap();
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = json(resp).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["redis"], "ok");
    assert_eq!(body["checks"]["database"], "ok");
}

#[tokio::test]
async fn post_with_a_body_to_an_unknown_route_is_a_404_problem_json() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let resp = app
        .http
        .post(app.url("/nowhere"))
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&resp, "content-type"), "application/problem+json");
}
