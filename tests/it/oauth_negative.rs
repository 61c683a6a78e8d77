//! OAuth 2.0 / OpenID Connect: what must be refused, and how (SQLite only; the storage paths are the same
//! as in `oauth.rs`, which runs on both backends).

use latchkey::apps::ClientType;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::oauth::oauth_error;
use crate::oauth_support::*;

async fn setup() -> (TestApp, Fixture, Client) {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    (app, fx, client)
}

/// The redirect (303) an authorization request gets, and its query parameter `name`.
fn redirected_error(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let location = answer.location.clone().expect("Location");
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let error = query_param(&location, "error").expect("error parameter");
    (location, error)
}

// ---------------------------------------------------------------------------------------------------------
// The authorization endpoint

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_with_unregistered_redirect_uri_shows_an_error_page_and_never_redirects() {
    let (app, fx, mut client) = setup().await;
    let p = pkce();
    for uri in [
        "https://evil.example.com/callback",
        "https://rp.example.com/callback/extra",
        "https://rp.example.com/callback?x=1",
    ] {
        client.redirect_uri = uri.into();
        let answer = Browser::new(&app)
            .get(&authorize_path(&fx, &client, SCOPE, Some(&p), &[]))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(answer.location.is_none(), "{uri}: no Location");
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(answer.body.contains("redirect_uri"), "{}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_with_unknown_client_id_shows_an_error_page_and_never_redirects() {
    let (app, fx, mut client) = setup().await;
    client.client_id = "0123456789abcdef0123456789abcdef".into();
    let answer = Browser::new(&app)
        .get(&authorize_path(&fx, &client, SCOPE, Some(&pkce()), &[]))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.location.is_none());
    // A client of another organization is just as unknown here.
    let other = fixture(&app).await;
    let foreign = confidential_client(&app, &other).await;
    let answer = Browser::new(&app)
        .get(&authorize_path(&fx, &foreign, SCOPE, Some(&pkce()), &[]))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.location.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_without_code_challenge_redirects_with_invalid_request_state_and_iss() {
    let (app, fx, client) = setup().await;
    let answer = Browser::new(&app)
        .get(&authorize_path(&fx, &client, SCOPE, None, &[]))
        .await;
    let (location, error) = redirected_error(&answer);
    assert_eq!(error, "invalid_request");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(fx.issuer(&app).as_str())
    );
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_refuses_plain_or_missing_code_challenge_method() {
    let (app, fx, client) = setup().await;
    let p = pkce();
    for method in [Some("plain"), None, Some("s256"), Some("")] {
        let mut extra = vec![("code_challenge", p.challenge.as_str())];
        if let Some(m) = method {
            extra.push(("code_challenge_method", m));
        }
        let answer = Browser::new(&app)
            .get(&authorize_path(&fx, &client, SCOPE, None, &extra))
            .await;
        let (_, error) = redirected_error(&answer);
        assert_eq!(error, "invalid_request", "method {method:?}");
    }
    // Control: S256 goes on to the login page.
    let answer = Browser::new(&app)
        .get(&authorize_path(&fx, &client, SCOPE, Some(&p), &[]))
        .await;
    assert!(answer.location.unwrap().contains("/login?req="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_with_response_type_token_is_unsupported_response_type() {
    let (app, fx, client) = setup().await;
    let path = authorize_path(&fx, &client, SCOPE, Some(&pkce()), &[])
        .replace("response_type=code", "response_type=token");
    let answer = Browser::new(&app).get(&path).await;
    let (location, error) = redirected_error(&answer);
    assert_eq!(error, "unsupported_response_type");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert!(query_param(&location, "access_token").is_none());
    assert!(!location.contains('#'));
}

// ---------------------------------------------------------------------------------------------------------
// The token endpoint

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_wrong_code_verifier_is_invalid_grant() {
    let (app, fx, client) = setup().await;
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &client, &p).await;
    let other = pkce();
    let answer = redeem(&app, &fx, &client, &code, &other.verifier).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(&answer), "invalid_grant");
    let answer = token(
        &app,
        &fx,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(oauth_error(&answer), "invalid_grant", "missing verifier");
    // A failed verifier does not burn the code for the real client.
    let answer = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_code_is_invalid_grant_and_revokes_the_tokens_of_the_first_redemption() {
    let (app, fx, client) = setup().await;
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &client, &p).await;
    let first = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(first.status, StatusCode::OK);
    let at = first.json()["access_token"].as_str().unwrap().to_string();
    let rt = first.json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(introspect(&app, &fx, &client, &at).await["active"], true);

    let second = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(&second), "invalid_grant");
    assert_eq!(introspect(&app, &fx, &client, &at).await["active"], false);
    assert_eq!(
        userinfo(&app, &fx, &at).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        oauth_error(&refresh(&app, &fx, &client, &rt).await),
        "invalid_grant"
    );
    assert!(
        audit_actions(&app, &fx)
            .await
            .contains(&"token.code_reuse_detected".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_code_is_invalid_grant() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("LATCHKEY_AUTHORIZATION_CODE_TTL_SECS", "5")],
    )
    .await
    .unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &client, &p).await;
    app.clock.advance(6);
    let answer = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(&answer), "invalid_grant");

    // Control: a fresh code within its 5 s works.
    let code = sign_in_and_get_code(&app, &fx, &client, &p).await;
    let answer = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_redeemed_with_another_redirect_uri_or_by_another_client_is_invalid_grant() {
    let (app, fx, client) = setup().await;
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &client, &p).await;
    let other = confidential_client(&app, &fx).await;
    let answer = redeem(&app, &fx, &other, &code, &p.verifier).await;
    assert_eq!(oauth_error(&answer), "invalid_grant");
    let answer = token(
        &app,
        &fx,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example.com/other"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(oauth_error(&answer), "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_client_secret_is_401_invalid_client_with_a_basic_challenge_when_basic_was_used() {
    let (app, fx, client) = setup().await;
    let wrong = Client {
        secret: Some("not-the-secret".into()),
        ..client.clone()
    };
    let form = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    let answer = token(&app, &fx, &wrong, &form).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(oauth_error(&answer), "invalid_client");
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "{:?}",
        answer.headers
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));

    // client_secret_post: 401 as well, and no Basic challenge.
    let resp = app
        .http
        .post(app.url(&fx.path("/token")))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", client.client_id.as_str()),
            ("client_secret", "not-the-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    // A confidential client without its secret, and an unknown client with a secret.
    let no_secret = Client {
        secret: None,
        ..client.clone()
    };
    assert_eq!(
        token(&app, &fx, &no_secret, &form).await.status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = Client {
        client_id: "ffffffffffffffffffffffffffffffff".into(),
        ..client.clone()
    };
    let answer = token(&app, &fx, &unknown, &form).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(oauth_error(&answer), "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_client_cannot_use_client_credentials() {
    let (app, fx, _) = setup().await;
    let public = register(&app, &fx, new_app(ClientType::Public)).await;
    assert!(public.secret.is_none());
    let answer = token(&app, &fx, &public, &[("grant_type", "client_credentials")]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(&answer), "unauthorized_client");
    assert!(!answer.body.contains("access_token"));
    // A public client cannot introspect either.
    let answer = post_as(
        &app,
        &fx.path("/introspect"),
        &public,
        &[("token", "x")],
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(oauth_error(&answer), "invalid_client");
}

// ---------------------------------------------------------------------------------------------------------
// Forged and misused JWTs at introspection and UserInfo

async fn assert_rejected(app: &TestApp, fx: &Fixture, client: &Client, token: &str, what: &str) {
    let body = introspect(app, fx, client, token).await;
    assert_eq!(body, json!({"active": false}), "introspection of {what}");
    let info = userinfo(app, fx, token).await;
    assert_eq!(
        info.status,
        StatusCode::UNAUTHORIZED,
        "userinfo with {what}: {}",
        info.body
    );
    assert!(
        info.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_access_tokens_are_inactive_and_refused_by_userinfo() {
    let (app, fx, client) = setup().await;
    let t = tokens(&app, &fx, &client).await;
    let real = t["access_token"].as_str().unwrap().to_string();
    let (header, payload) = jwt_parts(&real);
    assert_eq!(header["typ"], "at+jwt");
    let kid = header["kid"].as_str().unwrap().to_string();
    let now = latchkey::time_now();

    // Control: the same claims re-signed with the org's real key are accepted, so the minting below
    // produces tokens the server would otherwise take.
    let resigned = mint(&app, &fx, "RS256", "at+jwt", None, &payload).await;
    assert_eq!(
        introspect(&app, &fx, &client, &resigned).await["active"],
        true
    );
    assert_eq!(userinfo(&app, &fx, &resigned).await.status, StatusCode::OK);

    // alg: none (with and without a trailing signature part).
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    let unsigned = format!("{}.{}.", b64json(&none_header), b64json(&payload));
    assert_rejected(&app, &fx, &client, &unsigned, "alg none").await;
    assert_rejected(
        &app,
        &fx,
        &client,
        unsigned.trim_end_matches('.'),
        "alg none without signature part",
    )
    .await;

    // HS256 keyed with the RSA public key (key confusion): PEM, and the raw JWK text.
    let set = jwks(&app, &fx).await;
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let pem = rsa_public_pem(&jwk);
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\nMIIBIjAN"),
        "{pem}"
    );
    for (label, key) in [
        ("PEM", pem.clone().into_bytes()),
        ("JWK", jwk.to_string().into_bytes()),
    ] {
        let forged = hs256(&hs_header, &payload, &key);
        assert_rejected(
            &app,
            &fx,
            &client,
            &forged,
            &format!("HS256 with the {label} public key"),
        )
        .await;
    }

    // Unknown kid, signed with the real key.
    let unknown_kid = mint(
        &app,
        &fx,
        "RS256",
        "at+jwt",
        Some("key_unknown0000"),
        &payload,
    )
    .await;
    assert_rejected(&app, &fx, &client, &unknown_kid, "unknown kid").await;

    // Expired, signed with the real key.
    let mut expired = payload.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let expired = mint(&app, &fx, "RS256", "at+jwt", None, &expired).await;
    assert_rejected(&app, &fx, &client, &expired, "expired token").await;

    // Wrong issuer, signed with the real key.
    let mut foreign = payload.clone();
    foreign["iss"] = json!("https://other.example.com/o/acme");
    let foreign = mint(&app, &fx, "RS256", "at+jwt", None, &foreign).await;
    assert_rejected(&app, &fx, &client, &foreign, "wrong issuer").await;

    // Tampered payload, original signature kept: a later exp, another subject, a wider scope.
    let sig = real.rsplit('.').next().unwrap();
    for (claim, value) in [
        ("exp", json!(now + 86_400 * 365)),
        ("sub", json!("usr_someone_else")),
        ("scope", json!("openid email profile offline_access admin")),
    ] {
        let mut tampered = payload.clone();
        tampered[claim] = value;
        let token = format!("{}.{}.{sig}", b64json(&header), b64json(&tampered));
        assert_rejected(&app, &fx, &client, &token, &format!("tampered {claim}")).await;
    }

    // Garbage.
    for junk in ["", "a.b.c", "not a jwt", "eyJhbGciOiJSUzI1NiJ9.e30."] {
        let body = introspect(&app, &fx, &client, junk).await;
        assert_eq!(body["active"], false, "{junk:?}");
    }

    // The real token is still fine after all that.
    assert_eq!(introspect(&app, &fx, &client, &real).await["active"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_token_is_not_accepted_as_an_access_token() {
    let (app, fx, client) = setup().await;
    let t = tokens(&app, &fx, &client).await;
    let id_token = t["id_token"].as_str().unwrap();
    let (header, _) = jwt_parts(id_token);
    assert_ne!(header["typ"], "at+jwt");
    assert_rejected(&app, &fx, &client, id_token, "an ID token").await;
    // A real-key token with the ID token's typ and the access token's claims is refused too.
    let (_, at_payload) = jwt_parts(t["access_token"].as_str().unwrap());
    let retyped = mint(&app, &fx, "RS256", "JWT", None, &at_payload).await;
    assert_rejected(&app, &fx, &client, &retyped, "typ JWT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_of_another_organization_is_inactive_here() {
    let (app, fx, client) = setup().await;
    let other = fixture(&app).await;
    let other_client = confidential_client(&app, &other).await;
    let t = tokens(&app, &other, &other_client).await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&app, &other, &other_client, at).await["active"],
        true
    );
    assert_rejected(&app, &fx, &client, at, "another org's token").await;
}

// ---------------------------------------------------------------------------------------------------------
// Item 8: malformed bodies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_with_a_json_body_is_415_with_an_oauth_error() {
    let (app, fx, client) = setup().await;
    for path in ["/token", "/introspect", "/revoke"] {
        let resp = app
            .http
            .post(app.url(&fx.path(path)))
            .header(
                "authorization",
                basic(&client.client_id, client.secret.as_ref().unwrap()),
            )
            .json(&json!({"grant_type": "client_credentials", "token": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        assert!(
            resp.headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap().starts_with("application/json")),
            "{path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_grant_type_parameter_is_invalid_request() {
    let (app, fx, client) = setup().await;
    let resp = app
        .http
        .post(app.url(&fx.path("/token")))
        .header(
            "authorization",
            basic(&client.client_id, client.secret.as_ref().unwrap()),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&grant_type=authorization_code&refresh_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");

    // A repeated parameter at the authorization endpoint is an error page, not a 500.
    let path = format!(
        "{}&client_id={}",
        authorize_path(&fx, &client, SCOPE, Some(&pkce()), &[]),
        client.client_id
    );
    let answer = Browser::new(&app).get(&path).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.location.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_413_at_oauth_endpoints() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("LATCHKEY_MAX_BODY_BYTES", "1024")])
        .await
        .unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let big = "a".repeat(2048);
    for path in ["/token", "/introspect", "/revoke"] {
        let resp = app
            .http
            .post(app.url(&fx.path(path)))
            .header(
                "authorization",
                basic(&client.client_id, client.secret.as_ref().unwrap()),
            )
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", big.as_str()),
                ("token", big.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    // Just under the limit is parsed normally (and refused on its merits).
    let resp = app
        .http
        .post(app.url(&fx.path("/token")))
        .header(
            "authorization",
            basic(&client.client_id, client.secret.as_ref().unwrap()),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &"a".repeat(500)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_at_oauth_endpoints_never_cause_a_500() {
    let (app, fx, client) = setup().await;
    let auth = basic(&client.client_id, client.secret.as_ref().unwrap());
    let cases: Vec<(&str, Option<&str>, &str, &[u8])> = vec![
        (
            "/token",
            Some("application/x-www-form-urlencoded"),
            "",
            b"" as &[u8],
        ),
        (
            "/token",
            Some("application/x-www-form-urlencoded"),
            "",
            b"grant_type=password&username=a&password=b",
        ),
        (
            "/token",
            Some("application/x-www-form-urlencoded"),
            "",
            b"grant_type=%ZZ",
        ),
        (
            "/token",
            Some("application/x-www-form-urlencoded"),
            "",
            &[0xff, 0xfe, 0x3d, 0x00],
        ),
        ("/token", None, "", b"grant_type=client_credentials"),
        (
            "/token",
            Some("text/plain"),
            "",
            b"grant_type=client_credentials",
        ),
        (
            "/token",
            Some("application/x-www-form-urlencoded"),
            "Bearer abc",
            b"grant_type=client_credentials",
        ),
        (
            "/token",
            Some("application/x-www-form-urlencoded"),
            "Basic !!!notbase64",
            b"grant_type=client_credentials",
        ),
        (
            "/introspect",
            Some("application/x-www-form-urlencoded"),
            "",
            b"token=x&token=y",
        ),
        (
            "/introspect",
            Some("application/x-www-form-urlencoded"),
            "",
            b"token_type_hint=refresh_token",
        ),
        (
            "/revoke",
            Some("application/x-www-form-urlencoded"),
            "",
            b"",
        ),
        (
            "/userinfo",
            Some("application/x-www-form-urlencoded"),
            "Bearer a.b.c",
            b"access_token=x",
        ),
        (
            "/userinfo",
            Some("application/x-www-form-urlencoded"),
            "",
            &[0xff, 0x00],
        ),
    ];
    for (path, content_type, authorization, body) in cases {
        let mut req = app.http.post(app.url(&fx.path(path))).body(body.to_vec());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req = req.header(
            "authorization",
            if authorization.is_empty() {
                auth.as_str()
            } else {
                authorization
            },
        );
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            status.is_client_error(),
            "{path} {content_type:?} {authorization:?} {body:?}: {status} {text}"
        );
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        assert!(json["error"].is_string(), "{path}: {json}");
    }
}
