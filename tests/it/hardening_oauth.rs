//! Hardening of the OAuth and browser edge, each rule shown by the attack it stops: the sessions API
//! only for first-party applications holding `latchkey:sessions`, loopback redirect URIs that vary only
//! in the port, `return_to` checked after decoding, `POST /authorize`, passkey sign-in with passkeys
//! off, and 413 for every oversized body.

use std::time::Duration;

use latchkey::apps::ClientType;
use latchkey::audit::Actor;
use latchkey::error::Error;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, ServeProcess, TestApp, TestDb, cli_json, free_port, run_cli};
use crate::oauth_support::*;

// ---------------------------------------------------------------------------------------------------------
// Shared steps

async fn is_signed_in(b: &mut Browser<'_>, fx: &Fixture) -> bool {
    b.get(&fx.path("/account")).await.status == StatusCode::OK
}

/// Tokens from a full code flow in a fresh browser, and the session (`sid`) they came from.
async fn code_flow(app: &TestApp, fx: &Fixture, client: &Client, scope: &str) -> (Value, String) {
    let p = pkce();
    let mut b = Browser::new(app);
    let walked = walk(
        &mut b,
        &authorize_path(fx, client, scope, Some(&p), &[]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    let answer = redeem(app, fx, client, &walked.code(), &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let issued = answer.json();
    let (_, claims) = jwt_parts(issued["access_token"].as_str().unwrap());
    (issued, claims["sid"].as_str().expect("sid").to_string())
}

async fn api_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> (StatusCode, Option<String>, String) {
    let resp = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("API call");
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, challenge, resp.text().await.unwrap())
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------------------
// 9. The sessions API needs `latchkey:sessions`, which only first-party applications can obtain

async fn sessions_api_needs_the_sessions_scope_of_a_first_party_application(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let mut laptop = signed_in(&app, &fx).await;
    let third_party = confidential_client(&app, &fx).await;
    let first_party = first_party_client(&app, &fx).await;

    // A third-party application asking for the scope is told invalid_scope at its redirect URI, whether
    // or not the user is signed in, and no code is issued.
    for browser in [&mut Browser::new(&app), &mut laptop] {
        let p = pkce();
        let answer = browser
            .get(&authorize_path(
                &fx,
                &third_party,
                SESSIONS_SCOPE,
                Some(&p),
                &[],
            ))
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let location = answer.location.expect("redirect");
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        assert_eq!(
            query_param(&location, "error").as_deref(),
            Some("invalid_scope")
        );
        assert_eq!(query_param(&location, "code"), None);
    }
    // Nor through client credentials (there is no user) or by widening a refresh.
    let mut service = new_app(ClientType::Confidential);
    service.grant_types = vec![latchkey::apps::GrantType::ClientCredentials];
    service.redirect_uris = vec![];
    service.post_logout_redirect_uris = vec![];
    let service = register(&app, &fx, service).await;
    let refused = token(
        &app,
        &fx,
        &service,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "latchkey:sessions"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_scope");
    let (third_tokens, _) = code_flow(&app, &fx, &third_party, SCOPE).await;
    let widened = token(
        &app,
        &fx,
        &third_party,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                third_tokens["refresh_token"].as_str().unwrap(),
            ),
            ("scope", "openid latchkey:sessions"),
        ],
    )
    .await;
    assert_eq!(widened.status, StatusCode::BAD_REQUEST, "{}", widened.body);
    assert_eq!(widened.json()["error"], "invalid_scope");

    // Valid user tokens without the right to the API: a third-party token with every other scope, a
    // first-party token without the scope, and one carrying the scope for a client that is not
    // first-party (as a token issued before the organization withdrew the flag would).
    let (first_plain, _) = code_flow(&app, &fx, &first_party, "openid email").await;
    let (_, mut claims) = jwt_parts(first_plain["access_token"].as_str().unwrap());
    claims["scope"] = json!("openid latchkey:sessions");
    claims["client_id"] = json!(third_party.client_id);
    claims["jti"] = json!(format!("forged-{}", crate::helpers::random_hex(8)));
    let scope_for_third_party = mint(&app, &fx, "RS256", "at+jwt", None, &claims).await;
    let calls = [
        (reqwest::Method::GET, fx.path("/api/me/sessions")),
        (
            reqwest::Method::POST,
            fx.path("/api/me/sessions/revoke-others"),
        ),
        (reqwest::Method::DELETE, fx.path("/api/me/sessions/ses_x")),
    ];
    for (what, access_token, holder) in [
        (
            "third-party token",
            third_tokens["access_token"].as_str().unwrap(),
            &third_party,
        ),
        (
            "first-party token without the scope",
            first_plain["access_token"].as_str().unwrap(),
            &first_party,
        ),
        (
            "scope held by a third party",
            scope_for_third_party.as_str(),
            &third_party,
        ),
    ] {
        assert_eq!(
            introspect(&app, &fx, holder, access_token).await["active"],
            true,
            "{what} is otherwise valid"
        );
        for (method, path) in &calls {
            let (status, challenge, body) =
                api_call(&app, method.clone(), path, access_token).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{what}: {method} {path}: {body}"
            );
            let challenge = challenge.unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer ")
                    && challenge.contains("error=\"insufficient_scope\"")
                    && challenge.contains("scope=\"latchkey:sessions\""),
                "{what}: {challenge}"
            );
            assert!(!body.contains("\"sessions\""), "{what}: {body}");
        }
    }
    assert!(
        is_signed_in(&mut laptop, &fx).await,
        "nothing was signed out"
    );

    // A first-party application's token with the scope works.
    let (good, sid) = code_flow(&app, &fx, &first_party, SESSIONS_SCOPE).await;
    let good = good["access_token"].as_str().unwrap();
    let (status, _, body) = api_call(
        &app,
        reqwest::Method::GET,
        &fx.path("/api/me/sessions"),
        good,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 2, "{list}");
    assert!(
        sessions
            .iter()
            .any(|s| s["id"] == sid.as_str() && s["current"] == true)
    );
    let (status, _, body) = api_call(
        &app,
        reqwest::Method::POST,
        &fx.path("/api/me/sessions/revoke-others"),
        good,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!is_signed_in(&mut laptop, &fx).await);
}

backend_tests! {
    sessions_api_needs_the_sessions_scope_of_a_first_party_application => sqlite_sessions_api_needs_the_sessions_scope_of_a_first_party_application, postgres_sessions_api_needs_the_sessions_scope_of_a_first_party_application;
}

/// The organization sets the flag with the CLI: off by default, on and off again with `app update`.
async fn the_first_party_flag_is_set_with_app_create_and_update(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let env = db.env();
    cli_json(
        &["org", "create", "--slug", "fp", "--name", "FP"],
        &env,
        None,
    );
    let create = |extra: &[&str]| {
        let mut args = vec![
            "app",
            "create",
            "--org",
            "fp",
            "--name",
            "web",
            "--type",
            "confidential",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://app.example.com/cb",
        ];
        args.extend_from_slice(extra);
        cli_json(&args, &env, None)
    };
    let plain = create(&[]);
    assert_eq!(plain["first_party"], false, "{plain}");
    assert_eq!(create(&["--first-party"])["first_party"], true);
    let client_id = plain["client_id"].as_str().unwrap();
    let update = |value: &str| {
        cli_json(
            &[
                "app",
                "update",
                "--org",
                "fp",
                "--client-id",
                client_id,
                "--first-party",
                value,
            ],
            &env,
            None,
        )
    };
    assert_eq!(update("on")["first_party"], true);
    let listed = cli_json(&["app", "list", "--org", "fp"], &env, None);
    let stored = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["client_id"] == client_id)
        .unwrap();
    assert_eq!(stored["first_party"], true, "{listed}");
    assert_eq!(update("off")["first_party"], false);
    let events = cli_json(&["audit", "list", "--org", "fp"], &env, None);
    let updates = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "app.updated")
        .count();
    assert_eq!(updates, 2, "{events}");
    // Another organization's application cannot be changed through this one.
    cli_json(
        &["org", "create", "--slug", "fp2", "--name", "FP2"],
        &env,
        None,
    );
    let (code, _, stderr) = run_cli(
        &[
            "app",
            "update",
            "--org",
            "fp2",
            "--client-id",
            client_id,
            "--first-party",
            "on",
        ],
        &env,
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}

backend_tests! {
    the_first_party_flag_is_set_with_app_create_and_update => sqlite_the_first_party_flag_is_set_with_app_create_and_update, postgres_the_first_party_flag_is_set_with_app_create_and_update;
}

// ---------------------------------------------------------------------------------------------------------
// 12. Loopback redirect URIs of public clients: only the port may vary

const LOOPBACK: &str = "http://127.0.0.1/callback";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_redirect_uris_may_vary_only_in_the_port() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut input = new_app(ClientType::Public);
    input.redirect_uris = vec![LOOPBACK.into()];
    input.post_logout_redirect_uris = vec![];
    let mut native = register(&app, &fx, input).await;
    let p = pkce();

    // Another port is the native app's listener: the request goes on to sign-in.
    native.redirect_uri = "http://127.0.0.1:51234/callback".into();
    let mut b = Browser::new(&app);
    let answer = b
        .get(&authorize_path(&fx, &native, "openid", Some(&p), &[]))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert!(
        answer.location.as_deref().unwrap().contains("/login?req="),
        "{:?}",
        answer.location
    );

    // Anything else that differs is an unregistered redirect URI: an error page, never a redirect.
    for variant in [
        "http://127.0.0.1:51234/callback#frag",
        "http://127.0.0.1:51234/callback#",
        "http://user@127.0.0.1:51234/callback",
        "http://user:pw@127.0.0.1:51234/callback",
        "http://@127.0.0.1:51234/callback",
        "http://127.0.0.1:51234@evil.example/callback",
        "http://127.0.0.1:51234/x/../callback",
        "http://127.0.0.1:51234/x/%2e%2e/callback",
        "http://127.0.0.1:51234/x/%2E%2E/callback",
        "http://127.0.0.1:51234/x/.%2e/callback",
        "http://127.0.0.1:51234/x/..%2fcallback",
        "http://127.0.0.1:51234/x/%252e%252e/callback",
        "http://127.0.0.1:51234/./callback",
        "http://127.0.0.1:51234/%2e/callback",
        "http://127.0.0.1:51234\\callback",
        "http://127.0.0.1:51234/x\\..\\callback",
        "http://127.0.0.1:51234/call\tback",
        "HTTP://127.0.0.1:51234/callback",
        "http://127.0.0.1:51234/callback?",
        "http://127.0.0.1:051234/callback",
        "http://127.0.0.1:0/callback",
        "http://localhost:51234/callback",
        "http://[::1]:51234/callback",
    ] {
        native.redirect_uri = variant.to_string();
        let mut b = Browser::new(&app);
        let answer = b
            .get(&authorize_path(&fx, &native, "openid", Some(&p), &[]))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{variant}");
        assert_eq!(answer.location, None, "{variant}");
        assert!(
            answer.body.contains("redirect_uri is not registered"),
            "{variant}: {}",
            answer.body
        );
    }

    // The same shapes are refused when registering, for loopback and other URIs alike.
    for raw in [
        "http://127.0.0.1/callback#frag",
        "http://user@127.0.0.1/callback",
        "http://@127.0.0.1/callback",
        "http://127.0.0.1/x/../callback",
        "http://127.0.0.1/x/%2e%2e/callback",
        "http://127.0.0.1/x/..%2fcallback",
        "http://127.0.0.1/x/%252e%252e/callback",
        "http://127.0.0.1/./callback",
        "http://127.0.0.1\\callback",
        "https://user@app.example.com/cb",
        "https://app.example.com/a/%2E%2E/cb",
        "com.example.app:/a/../cb",
    ] {
        let mut input = new_app(ClientType::Public);
        input.redirect_uris = vec![raw.into()];
        input.post_logout_redirect_uris = vec![];
        match latchkey::apps::create(&app.services, &Actor::operator(), &fx.org, input).await {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "redirect_uri", "{raw}"),
            other => panic!("{raw}: expected a refusal, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// 13. `return_to` stays inside the organization after normalisation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_stays_inside_the_organization_however_it_is_encoded() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let other = fixture(&app).await;
    let (s, o) = (&fx.org.slug, &other.org.slug);
    let account_url = app.url(&fx.path("/account"));
    let hostile = [
        format!("/o/{s}/%2e%2e/{o}/account"),
        format!("/o/{s}/%2E%2E/{o}/account"),
        format!("/o/{s}/.%2e/{o}/account"),
        format!("/o/{s}/%2e./{o}/account"),
        format!("/o/{s}/..%2f{o}/account"),
        format!("/o/{s}/..%2F{o}/account"),
        format!("/o/{s}/%2e%2e%2f{o}/account"),
        format!("/o/{s}/%252e%252e/{o}/account"),
        format!("/o/{s}/%252e%252e%252f{o}/account"),
        format!("/o/{s}/%25252e%25252e/{o}/account"),
        format!("/o/{s}/..\\{o}/account"),
        format!("/o/{s}/..%5c{o}/account"),
        format!("/o/{s}/%5c..%5c{o}/account"),
        format!("/o/{s}/./../{o}/account"),
        format!("/o/{s}/account/../../{o}/account"),
        format!("/o/{s}/.."),
        format!("/o/{s}/%2e%2e"),
        format!("/o/{s}/%2e"),
        format!("/o/{s}%2f..%2f{o}/account"),
        format!("/o/{s}/%2f%2fevil.example"),
        format!("/o/{s}//evil.example"),
        format!("/o/{s}/%0d%0aLocation:%20https://evil.example"),
        format!("/o/{s}/account%00"),
        format!("/o/{s}/%zz"),
        format!("/o/{s}/account#//evil.example"),
        format!("/o/{o}/account"),
        format!("//evil.example/o/{s}/account"),
        format!("/\\evil.example/o/{s}/account"),
        format!("\\\\evil.example/o/{s}/account"),
        format!("https://evil.example/o/{s}/account"),
        format!("http:/evil.example/o/{s}/account"),
        format!("javascript:alert(1)//o/{s}/account"),
        format!("%2fo%2f{s}%2faccount"),
    ];
    for evil in &hostile {
        // Not carried by the sign-in page...
        let mut b = Browser::new(&app);
        let page = b
            .get(&format!("{}?return_to={}", fx.path("/login"), encode(evil)))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{evil}");
        assert!(!page.body.contains("name=\"return_to\""), "{evil}");
        let csrf = hidden_field(&page.body, "csrf");
        // ...nor followed when posted directly: the sign-in lands on this organization's account page.
        let answer = b
            .post_form(
                &fx.path("/login"),
                &[
                    ("csrf", &csrf),
                    ("return_to", evil),
                    ("email", &fx.email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{evil}");
        let location = answer.location.clone().unwrap();
        assert_eq!(location, account_url, "{evil}");
        // Following it as a browser would (dot segments resolved after decoding) stays here.
        let resolved = url::Url::parse(&app.url(&fx.path("/login")))
            .unwrap()
            .join(&location)
            .unwrap();
        assert_eq!(resolved.origin().ascii_serialization(), app.base, "{evil}");
        assert!(resolved.path().starts_with(&format!("/o/{s}/")), "{evil}");
        let landed = b.get(&location).await;
        assert_eq!(landed.status, StatusCode::OK, "{evil}");
        assert!(landed.body.contains(&fx.email), "{evil}");
    }
    // A page of this organization, with its query, is followed.
    let target = fx.path("/account?done=profile");
    let mut b = Browser::new(&app);
    let page = b
        .get(&format!(
            "{}?return_to={}",
            fx.path("/login"),
            encode(&target)
        ))
        .await;
    assert_eq!(hidden_field(&page.body, "return_to"), target);
    let csrf = hidden_field(&page.body, "csrf");
    let answer = b
        .post_form(
            &fx.path("/login"),
            &[
                ("csrf", &csrf),
                ("return_to", &target),
                ("email", &fx.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.location.as_deref(), Some(app.url(&target).as_str()));
}

// ---------------------------------------------------------------------------------------------------------
// 14. POST /authorize (OpenID Connect Core §3.1.2.1)

async fn a_code_flow_can_start_with_a_post_to_the_authorization_endpoint(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", SCOPE),
        ("state", "st-post"),
        ("nonce", "n-post"),
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // A relying party's page posts the form (cross-site: no Origin of ours, no cookies needed).
    let mut b = Browser::new(&app);
    let posted = app
        .http
        .post(app.url(&fx.path("/authorize")))
        .header("origin", "https://rp.example.com")
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let next = posted.headers()["location"].to_str().unwrap().to_string();
    assert!(next.starts_with(&fx.path("/authorize?")), "{next}");
    let walked = walk(&mut b, &next, Some((&fx.email, PASSWORD)), "allow").await;
    assert!(walked.saw_login && walked.saw_consent);
    assert_eq!(walked.param("state").as_deref(), Some("st-post"));
    let answer = redeem(&app, &fx, &client, &walked.code(), &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let issued = answer.json();
    let (_, id_token) = jwt_parts(issued["id_token"].as_str().unwrap());
    assert_eq!(id_token["nonce"], "n-post");
    assert_eq!(id_token["sub"], fx.user.id.as_str());

    // Signed in and consented, a POST is answered like a GET: straight back with a code.
    let p2 = pkce();
    let mut again: Vec<(&str, &str)> = params.to_vec();
    again.retain(|(k, _)| *k != "code_challenge");
    again.push(("code_challenge", &p2.challenge));
    let posted = b.post_form(&fx.path("/authorize"), &again).await;
    let walked = walk(&mut b, posted.location.as_deref().unwrap(), None, "allow").await;
    assert!(!walked.saw_login && !walked.saw_consent);
    let answer = redeem(&app, &fx, &client, &walked.code(), &p2.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // Errors are the GET's: an unregistered redirect URI is an error page, a bad request goes back to
    // the client, and a malformed body (a repeated parameter) is an error page.
    let mut bad_redirect = params.to_vec();
    bad_redirect.retain(|(k, _)| *k != "redirect_uri");
    bad_redirect.push(("redirect_uri", "https://evil.example/cb"));
    let mut bad_type = params.to_vec();
    bad_type.retain(|(k, _)| *k != "response_type");
    bad_type.push(("response_type", "token"));
    let mut b = Browser::new(&app);
    let posted = b.post_form(&fx.path("/authorize"), &bad_redirect).await;
    let page = b.get(posted.location.as_deref().unwrap()).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(page.location, None);
    let posted = b.post_form(&fx.path("/authorize"), &bad_type).await;
    let back = b.get(posted.location.as_deref().unwrap()).await;
    let location = back.location.expect("redirect to the client");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("unsupported_response_type")
    );
    let mut repeated = params.to_vec();
    repeated.push(("client_id", "another"));
    let page = b.post_form(&fx.path("/authorize"), &repeated).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(page.location, None);
}

backend_tests! {
    a_code_flow_can_start_with_a_post_to_the_authorization_endpoint => sqlite_a_code_flow_can_start_with_a_post_to_the_authorization_endpoint, postgres_a_code_flow_can_start_with_a_post_to_the_authorization_endpoint;
}

// ---------------------------------------------------------------------------------------------------------
// 15. Passkey sign-in when passkeys are off (public URL without a domain name)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_sign_in_with_passkeys_off_is_a_client_error_and_logs_no_error() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let port = free_port();
    let mut env = db.env();
    env.insert(
        "LATCHKEY_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{port}"),
    );
    cli_json(
        &["org", "create", "--slug", "nopk", "--name", "No passkeys"],
        &env,
        None,
    );
    let mut server = ServeProcess::start(db.data_dir(), port, &env);
    server.wait_ready(Duration::from_secs(20)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let login = http
        .get(format!("{base}/o/nopk/login"))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = login.text().await.unwrap();
    assert!(
        !page.contains("/login/passkey"),
        "no passkey form is offered"
    );
    let csrf = cookie.split_once('=').unwrap().1.to_string();
    // Exact statuses: a CSRF refusal (403) must not pass for "the passkey was refused".
    for (path, expected, form) in [
        (
            "/o/nopk/login/passkey",
            401,
            vec![
                ("csrf", csrf.as_str()),
                ("state", "made-up"),
                ("credential", "{}"),
            ],
        ),
        (
            "/o/nopk/login/passkey/options",
            400,
            vec![("csrf", csrf.as_str())],
        ),
    ] {
        let answer = http
            .post(format!("{base}{path}"))
            .header("origin", &base)
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert_eq!(status.as_u16(), expected, "{path}");
    }
    crate::helpers::send_signal(server.pid(), "TERM");
    let _ = crate::helpers::wait_with_timeout(&mut server.child, Duration::from_secs(10));
    let log = server.log_text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).is_ok_and(|l| l["level"] == "ERROR"))
        .collect();
    assert!(errors.is_empty(), "error lines: {errors:?}");
}

// ---------------------------------------------------------------------------------------------------------
// 16. Bodies over max_body_bytes get 413 on every route, and change nothing

const BODY_LIMIT: usize = 4096;

async fn changes(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "audit_events",
        "users",
        "sessions",
        "email_outbox",
        "one_time_tokens",
        "token_families",
        "refresh_tokens",
        "revoked_access_tokens",
        "credentials",
        "consents",
    ] {
        counts.push(
            app.db
                .scalar_i64(&format!("SELECT COUNT(*) FROM {table}"))
                .await,
        );
    }
    counts.push(
        app.db
            .scalar_i64("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL")
            .await,
    );
    counts
}

/// Sends `body` as a chunked request (no Content-Length) over a raw connection; returns the status.
async fn chunked_post(app: &TestApp, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n",
        app.addr
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    for chunk in body.chunks(1000) {
        bytes.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend(chunk);
        bytes.extend(b"\r\n");
    }
    bytes.extend(b"0\r\n\r\n");
    stream.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn oversized_bodies_get_413_on_every_route_and_change_nothing(backend: Backend) {
    let limit = BODY_LIMIT.to_string();
    let Some(app) =
        TestApp::spawn_with(backend, &[("LATCHKEY_MAX_BODY_BYTES", limit.as_str())]).await
    else {
        return;
    };
    let fx = fixture(&app).await;
    let mut service = new_app(ClientType::Confidential);
    service.grant_types = vec![latchkey::apps::GrantType::ClientCredentials];
    service.redirect_uris = vec![];
    service.post_logout_redirect_uris = vec![];
    let service = register(&app, &fx, service).await;
    let client = first_party_client(&app, &fx).await;
    let (issued, sid) = code_flow(&app, &fx, &client, SESSIONS_SCOPE).await;
    let access_token = issued["access_token"].as_str().unwrap().to_string();
    let mut me = signed_in(&app, &fx).await;
    let account = me.get(&fx.path("/account")).await;
    let account_csrf = hidden_field(&account.body, "csrf");
    let anonymous_csrf = me
        .cookies
        .iter()
        .find(|(k, _)| k.contains("csrf"))
        .map(|(_, v)| v.clone())
        .expect("a CSRF cookie from the sign-in page");
    let basic_auth = basic(&service.client_id, service.secret.as_deref().unwrap());
    let padding = "x".repeat(BODY_LIMIT);
    let before = changes(&app).await;

    // Each body would do something if it were read: valid CSRF, credentials, a name, a decision...
    let routes = [
        "/authorize",
        "/token",
        "/introspect",
        "/revoke",
        "/userinfo",
        "/login",
        "/login/mfa",
        "/login/mfa/email",
        "/login/mfa/enrol",
        "/login/mfa/passkey/options",
        "/login/passkey/options",
        "/login/passkey",
        "/consent",
        "/logout",
        "/signup",
        "/verify-email/resend",
        "/forgot-password",
        "/reset-password",
        "/account/profile",
        "/account/password",
        "/account/sessions/revoke",
        "/account/sessions/revoke-others",
        "/account/signout",
        "/account/passkeys/options",
        "/account/passkeys",
        "/account/mfa/totp",
        "/account/mfa/remove",
        "/account/mfa/email",
        "/account/mfa/recovery-codes",
        "/api/me/sessions/revoke-others",
    ];
    for route in routes {
        let csrf = if route.starts_with("/account") {
            &account_csrf
        } else {
            &anonymous_csrf
        };
        let form: Vec<(&str, &str)> = vec![
            ("csrf", csrf),
            ("email", &fx.email),
            ("password", PASSWORD),
            ("current_password", PASSWORD),
            ("new_password", "a brand new passphrase 42"),
            ("name", "Changed By An Oversized Body"),
            ("grant_type", "client_credentials"),
            ("token", &access_token),
            ("session", &sid),
            ("confirm", "yes"),
            ("decision", "allow"),
            ("pad", &padding),
        ];
        let resp = app
            .http
            .post(app.url(&fx.path(route)))
            .header("origin", app.base.clone())
            .header("cookie", me.cookie_header())
            .header(
                "authorization",
                if route.starts_with("/api") || route == "/userinfo" {
                    format!("Bearer {access_token}")
                } else {
                    basic_auth.clone()
                },
            )
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{route}: {}",
            resp.text().await.unwrap()
        );
    }
    // The JSON API and DELETE too, whatever the content type.
    let resp = app
        .http
        .delete(app.url(&fx.path(&format!("/api/me/sessions/{sid}"))))
        .bearer_auth(&access_token)
        .header("content-type", "application/json")
        .body(format!("{{\"pad\":\"{padding}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Without a Content-Length (chunked), the body is counted as it arrives.
    let login_body = format!(
        "csrf={anonymous_csrf}&email={}&password={}&pad={padding}",
        encode(&fx.email),
        encode(PASSWORD)
    );
    let cookie = me.cookie_header();
    let login_headers = [("Origin", app.base.as_str()), ("Cookie", cookie.as_str())];
    let status = chunked_post(
        &app,
        &fx.path("/login"),
        &login_headers,
        login_body.as_bytes(),
    )
    .await;
    assert_eq!(status, 413);
    let token_body = format!("grant_type=client_credentials&pad={padding}");
    let token_headers = [("Authorization", basic_auth.as_str())];
    let status = chunked_post(
        &app,
        &fx.path("/token"),
        &token_headers,
        token_body.as_bytes(),
    )
    .await;
    assert_eq!(status, 413);

    assert_eq!(
        changes(&app).await,
        before,
        "an oversized body changed something"
    );
    assert!(is_signed_in(&mut me, &fx).await);
    let user = app
        .services
        .db
        .tenant(&fx.org.id)
        .user_by_id(&fx.user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name.as_deref(), Some("Alice Example"));

    // A chunked body within the limit is handed on whole.
    let status = chunked_post(
        &app,
        &fx.path("/token"),
        &token_headers,
        b"grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200);
}

backend_tests! {
    oversized_bodies_get_413_on_every_route_and_change_nothing => sqlite_oversized_bodies_get_413_on_every_route_and_change_nothing, postgres_oversized_bodies_get_413_on_every_route_and_change_nothing;
}
