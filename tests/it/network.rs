//! The connection edge: idle and half-sent connections are closed, connections over the cap are refused
//! with a clear 503, and the client's address behind a trusted proxy is the forwarded one, while a
//! forwarding header from anyone else changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{Backend, TestApp};
use crate::oauth_support::*;

/// Reads until the server closes the connection (or `limit` passes); returns when it closed, if it did.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn healthz_status(app: &TestApp) -> StatusCode {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz answers")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_idle_sockets_are_closed_and_healthz_keeps_answering() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("LATCHKEY_HEADER_READ_TIMEOUT_SECS", "1"),
            ("LATCHKEY_KEEP_ALIVE_IDLE_SECS", "3"),
        ],
    )
    .await
    .unwrap();
    // 300 sockets: half send part of a request head and stop, half send nothing at all.
    let mut sockets = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(app.addr).await.expect("connect");
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        sockets.push(s);
    }
    assert_eq!(healthz_status(&app).await, StatusCode::OK);
    // Every one of them is closed by the server shortly after the header timeout.
    let mut closed = 0;
    for s in &mut sockets {
        if closed_within(s, Duration::from_secs(10)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 300, "every idle or half-sent socket is closed");

    // A kept-alive connection may stay idle longer than the header timeout, but not forever.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed_after = closed_within(&mut kept, Duration::from_secs(15))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(
        closed_after >= Duration::from_millis(2500),
        "the keep-alive idle timeout (3 s), not the header timeout (1 s), applies between requests: \
         closed after {closed_after:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_until_one_closes() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("LATCHKEY_MAX_CONNECTIONS", "20")])
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // The 21st is refused at once, with a reason and a hint when to come back.
    let refused = reqwest::Client::new()
        .get(app.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("a refusal is an answer, not a hang");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("too many connections")
    );

    // Closing held connections frees their slots.
    held.truncate(10);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots are freed when clients close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_and_never_reads_loses_its_connection() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("LATCHKEY_REQUEST_TIMEOUT_SECS", "1"),
            ("LATCHKEY_MAX_CONNECTIONS", "1"),
        ],
    )
    .await
    .unwrap();
    let fx = fixture(&app).await;
    // Thousands of pipelined requests for a ~1.5 KB document, and a tiny receive window never read from:
    // the server's answers back up until its writes cannot proceed.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let (_reader, mut writer) = stream.into_split();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        fx.path("/.well-known/openid-configuration")
    );
    let pipelined = request.repeat(6000);
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(pipelined.as_bytes()).await;
        writer
    });
    // It holds the only slot for now...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = reqwest::Client::new()
        .get(app.url("/healthz"))
        .send()
        .await
        .map(|r| r.status());
    assert!(
        matches!(status, Ok(StatusCode::SERVICE_UNAVAILABLE)),
        "the stalled client holds the only slot: {status:?}"
    );
    // ...until its stalled writes time out and the slot is free again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .map(|r| r.status());
        if matches!(status, Ok(StatusCode::OK)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a client that never reads keeps its slot: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sender.abort();
    app.stop().await;
}

/// An HTTP client whose connections come from `local` (any 127.0.0.0/8 address is this machine).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// One wrong-password sign-in for `fx`'s user through `http`, with `headers` added; the answer's status.
async fn wrong_password(
    app: &TestApp,
    http: &reqwest::Client,
    fx: &Fixture,
    login: &LoginPage,
    headers: &[(&str, &str)],
) -> StatusCode {
    let mut request = http
        .post(app.url(&fx.path("/login")))
        .header("origin", app.base.clone())
        .header("cookie", login.cookie.clone())
        .form(&[
            ("req", login.req.as_str()),
            ("csrf", login.csrf.as_str()),
            ("email", fx.email.as_str()),
            ("password", "not the password"),
        ]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status()
}

struct LoginPage {
    cookie: String,
    csrf: String,
    req: String,
}

async fn open_login(app: &TestApp, fx: &Fixture) -> LoginPage {
    let client = confidential_client(app, fx).await;
    let p = pkce();
    let mut browser = Browser::new(app);
    let start = browser
        .get(&authorize_path(fx, &client, SCOPE, Some(&p), &[]))
        .await;
    let login = browser.get(start.location.as_deref().unwrap()).await;
    LoginPage {
        csrf: hidden_field(&login.body, "csrf"),
        req: hidden_field(&login.body, "req"),
        cookie: browser.cookie_header(),
    }
}

async fn failed_login_ips(app: &TestApp, fx: &Fixture) -> Vec<String> {
    app.services
        .db
        .tenant(&fx.org.id)
        .audit_events(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "login.failed")
        .filter_map(|e| e.ip)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_header_from_an_untrusted_peer_changes_nothing() {
    // Only 127.0.0.2 is a trusted proxy; this client connects from 127.0.0.1.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("LATCHKEY_TRUSTED_PROXIES", "127.0.0.2")],
    )
    .await
    .unwrap();
    let fx = fixture(&app).await;
    let login = open_login(&app, &fx).await;
    let direct = client_from("127.0.0.1");
    // A fresh spoofed address on every guess does not buy fresh guesses.
    for i in 0..5 {
        let spoof = format!("203.0.113.{i}");
        let forwarded = format!("for={spoof}");
        let status = wrong_password(
            &app,
            &direct,
            &fx,
            &login,
            &[("x-forwarded-for", &spoof), ("forwarded", &forwarded)],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = wrong_password(
        &app,
        &direct,
        &fx,
        &login,
        &[("x-forwarded-for", "203.0.113.99")],
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(failed_login_ips(&app, &fx).await, vec!["127.0.0.1"; 5]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_two_clients_are_limited_separately() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("LATCHKEY_TRUSTED_PROXIES", "127.0.0.2, 10.0.0.0/8")],
    )
    .await
    .unwrap();
    let fx = fixture(&app).await;
    let login = open_login(&app, &fx).await;
    let proxy = client_from("127.0.0.2");
    // The first client exhausts its sign-in attempts; what it wrote itself into the header (the left-most
    // entry) is ignored, the address the proxies saw counts.
    // A `Forwarded` header the client adds (which such a proxy passes through) is not read either.
    for i in 0..5 {
        let chain = format!("192.0.2.{i}, 198.51.100.1, 10.1.2.3");
        let spoof = format!("for=192.0.2.{i}");
        let status = wrong_password(
            &app,
            &proxy,
            &fx,
            &login,
            &[("x-forwarded-for", &chain), ("forwarded", &spoof)],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let limited = wrong_password(
        &app,
        &proxy,
        &fx,
        &login,
        &[("x-forwarded-for", "198.51.100.1")],
    )
    .await;
    assert_eq!(limited, StatusCode::TOO_MANY_REQUESTS);
    // A second client behind the same proxy is not locked out by the first.
    let other = wrong_password(
        &app,
        &proxy,
        &fx,
        &login,
        &[("x-forwarded-for", "198.51.100.2")],
    )
    .await;
    assert_eq!(other, StatusCode::UNAUTHORIZED);
    let mut ips = failed_login_ips(&app, &fx).await;
    ips.sort();
    assert_eq!(
        ips,
        [vec!["198.51.100.1"; 5], vec!["198.51.100.2"]].concat(),
        "audit events record the client, not the proxy"
    );
    app.stop().await;
}

#[test]
fn loopback_addresses_other_than_127_0_0_1_are_usable() {
    // The proxy tests bind 127.0.0.2; fail clearly if this machine cannot.
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new("127.0.0.2".parse().unwrap(), 0))
        .expect("bind 127.0.0.2");
}
