//! Sliding-window rate limits: exact under concurrency, in memory and in real Redis, shared between
//! instances through Redis, degraded (but working) when Redis is unreachable, and applied to sign-in.

use std::sync::Arc;
use std::time::Duration;

use latchkey::ephemeral::Ephemeral;
use latchkey::ephemeral::memory::MemoryEphemeral;
use latchkey::ephemeral::redis::RedisEphemeral;
use latchkey::ephemeral::resilient::Resilient;
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, random_hex, redis_url};
use crate::oauth_support::*;

/// Which limiter: the sliding-window log (low limits) or the sliding-window counter (high rates).
#[derive(Clone, Copy)]
enum Limiter {
    Log,
    Counter,
}

async fn exactly_the_limit_under_concurrency(store: Arc<dyn Ephemeral>, limiter: Limiter) {
    let key = format!("test:{}", random_hex(8));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let window = Duration::from_secs(60);
                match limiter {
                    Limiter::Log => store.hit(&key, 5, window).await.unwrap(),
                    Limiter::Counter => store.hit_counter(&key, 5, window).await.unwrap(),
                }
            })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        let d = t.await.unwrap();
        if d.allowed {
            allowed += 1;
        } else {
            // The counter may ask a caller to wait into the next window, never beyond it.
            assert!(d.reset_after > Duration::ZERO && d.reset_after <= Duration::from_secs(120));
            assert_eq!(d.remaining, 0);
        }
    }
    assert_eq!(
        allowed,
        5,
        "exactly the limit is let through ({})",
        store.backend()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_limit_is_exact_under_50_concurrent_hits() {
    for limiter in [Limiter::Log, Limiter::Counter] {
        exactly_the_limit_under_concurrency(Arc::new(MemoryEphemeral::new()), limiter).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_limit_is_exact_under_50_concurrent_hits() {
    let Some(url) = redis_url() else { return };
    for limiter in [Limiter::Log, Limiter::Counter] {
        exactly_the_limit_under_concurrency(Arc::new(RedisEphemeral::new(&url).unwrap()), limiter)
            .await;
    }
}

/// The Redis script and the in-memory counter weigh the previous window the same way: after a full
/// window of hits, the next window starts with (almost) no room, and the room grows as it slides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counter_slides_into_the_next_window() {
    let Some(url) = redis_url() else { return };
    let store = RedisEphemeral::new(&url).unwrap();
    let key = format!("test:{}", random_hex(8));
    let window = Duration::from_millis(1000);
    // Fill one fixed window (wait for the start of one, so the hits land in the same window).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(
        1000 - (now.as_millis() % 1000) as u64 + 50,
    ))
    .await;
    let mut allowed = 0;
    for _ in 0..12 {
        if store.hit_counter(&key, 10, window).await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
    // About 300 ms into the next window the previous one still weighs about 7: about 3 more fit.
    tokio::time::sleep(Duration::from_millis(1250)).await;
    let mut early = 0;
    for _ in 0..10 {
        if store.hit_counter(&key, 10, window).await.unwrap().allowed {
            early += 1;
        }
    }
    assert!(
        (1..=5).contains(&early),
        "a fixed window would have allowed 10; the sliding counter allowed {early}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limits_are_shared_between_instances() {
    let Some(url) = redis_url() else { return };
    let a = RedisEphemeral::new(&url).unwrap();
    let b = RedisEphemeral::new(&url).unwrap();
    let key = format!("test:{}", random_hex(8));
    for _ in 0..3 {
        assert!(
            a.hit(&key, 5, Duration::from_secs(60))
                .await
                .unwrap()
                .allowed
        );
    }
    assert!(
        b.hit(&key, 5, Duration::from_secs(60))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        b.hit(&key, 5, Duration::from_secs(60))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !a.hit(&key, 5, Duration::from_secs(60))
            .await
            .unwrap()
            .allowed,
        "the sixth hit, on either instance, is refused"
    );
    b.clear(&key).await.unwrap();
    assert!(
        a.hit(&key, 5, Duration::from_secs(60))
            .await
            .unwrap()
            .allowed,
        "clearing on one instance clears for all"
    );
    // One-time markers are shared too: a replay on the other instance is caught.
    let marker = format!("nonce:{}", random_hex(8));
    assert!(
        a.remember_once(&marker, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !b.remember_once(&marker, Duration::from_secs(60))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_degrades_to_local_limits_instead_of_failing() {
    let store = Resilient::new(RedisEphemeral::new("redis://127.0.0.1:1").unwrap());
    assert!(!store.degraded());
    let key = format!("test:{}", random_hex(8));
    for _ in 0..2 {
        assert!(
            store
                .hit(&key, 2, Duration::from_secs(60))
                .await
                .unwrap()
                .allowed
        );
    }
    assert!(
        !store
            .hit(&key, 2, Duration::from_secs(60))
            .await
            .unwrap()
            .allowed,
        "still limited, locally"
    );
    assert!(store.degraded(), "and it says so");
    assert!(store.ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_redis_is_not_degraded() {
    let Some(url) = redis_url() else { return };
    let store = Resilient::new(RedisEphemeral::new(&url).unwrap());
    let key = format!("test:{}", random_hex(8));
    assert!(
        store
            .hit(&key, 2, Duration::from_secs(60))
            .await
            .unwrap()
            .allowed
    );
    assert!(!store.degraded());
    assert!(store.ping().await.is_ok());
}

/// 50 parallel wrong passwords for one account from one address: exactly 5 are checked (401), the rest
/// get 429 with Retry-After and RateLimit headers. A non-existent account behaves the same way.
async fn parallel_wrong_passwords_are_limited_to_five(app: TestApp) {
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    for email in [fx.email.clone(), "nobody-here@example.com".to_string()] {
        let mut browser = Browser::new(&app);
        let start = browser
            .get(&authorize_path(&fx, &client, SCOPE, Some(&p), &[]))
            .await;
        let login = browser.get(start.location.as_deref().unwrap()).await;
        let csrf = hidden_field(&login.body, "csrf");
        let req = hidden_field(&login.body, "req");
        let cookie = browser.cookie_header();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let http = app.http.clone();
                let url = app.url(&fx.path("/login"));
                let (cookie, csrf, req, email, origin) = (
                    cookie.clone(),
                    csrf.clone(),
                    req.clone(),
                    email.clone(),
                    app.base.clone(),
                );
                tokio::spawn(async move {
                    http.post(url)
                        .header("origin", origin)
                        .header("cookie", cookie)
                        .form(&[
                            ("req", req.as_str()),
                            ("csrf", csrf.as_str()),
                            ("email", email.as_str()),
                            ("password", "wrong password 1"),
                        ])
                        .send()
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut checked = 0;
        let mut limited = 0;
        for t in tasks {
            let r = t.await.unwrap();
            match r.status() {
                StatusCode::UNAUTHORIZED => checked += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    limited += 1;
                    assert!(r.headers().get("retry-after").is_some());
                    assert!(r.headers().get("ratelimit-policy").is_some());
                    assert!(r.headers().get("ratelimit").is_some());
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!((checked, limited), (5, 45), "for {email}");
        // Even the right password waits for the window now: an attacker cannot keep guessing.
        if email == fx.email {
            let r = app
                .http
                .post(app.url(&fx.path("/login")))
                .header("origin", app.base.clone())
                .header("cookie", cookie.clone())
                .form(&[
                    ("req", req.as_str()),
                    ("csrf", csrf.as_str()),
                    ("email", email.as_str()),
                    ("password", PASSWORD),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        }
    }
    let actions = audit_actions(&app, &fx).await;
    assert_eq!(actions.iter().filter(|a| *a == "login.failed").count(), 10);
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "login.rate_limited")
            .count(),
        91
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_are_limited_to_five_in_memory() {
    parallel_wrong_passwords_are_limited_to_five(TestApp::spawn(Backend::Sqlite).await.unwrap())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_are_limited_to_five_with_redis() {
    let Some(url) = redis_url() else { return };
    let app = TestApp::spawn_with(Backend::Sqlite, &[("LATCHKEY_REDIS_URL", &url)])
        .await
        .unwrap();
    parallel_wrong_passwords_are_limited_to_five(app).await;
}

/// With Redis configured but unreachable the service keeps answering, and every response says it is
/// degraded; with Redis reachable, no response carries the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_x_auth_degraded_while_redis_is_unreachable() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("LATCHKEY_REDIS_URL", "redis://127.0.0.1:1")],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("x-auth-degraded")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let fx = fixture(&app).await;
    let meta = app.get(&fx.path("/.well-known/openid-configuration")).await;
    assert_eq!(meta.status(), StatusCode::OK);
    assert!(meta.headers().get("x-auth-degraded").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_do_not_carry_x_auth_degraded_with_a_reachable_redis() {
    let Some(url) = redis_url() else { return };
    let app = TestApp::spawn_with(Backend::Sqlite, &[("LATCHKEY_REDIS_URL", &url)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("x-auth-degraded").is_none());
}
