//! OAuth 2.0 / OpenID Connect provider, end to end over HTTP: the authorization-code flow driven by a real
//! client library (`openidconnect`), refresh rotation, revocation, session_version, key rotation, metadata,
//! CORS and the hosted browser flows (prompt, consent, first-party, ES256, logout).

use latchkey::apps::ClientType;
use latchkey::audit::{Action, Actor, NewAuditEvent};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::oauth_support::*;

fn library_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("openidconnect http client")
}

fn assert_invalid_grant<E: std::error::Error + 'static>(
    result: Result<
        impl std::fmt::Debug,
        RequestTokenError<E, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
    >,
    what: &str,
) {
    match result {
        Err(RequestTokenError::ServerResponse(r)) => {
            assert_eq!(*r.error(), CoreErrorResponseType::InvalidGrant, "{what}")
        }
        other => panic!("{what}: expected invalid_grant, got {other:?}"),
    }
}

backend_tests! {
    authorization_code_flow_with_pkce_works_with_a_real_openid_connect_client => sqlite_authorization_code_flow_with_pkce_works_with_a_real_openid_connect_client, postgres_authorization_code_flow_with_pkce_works_with_a_real_openid_connect_client;
    refresh_token_rotation_detects_reuse_and_revokes_the_whole_family => sqlite_refresh_token_rotation_detects_reuse_and_revokes_the_whole_family, postgres_refresh_token_rotation_detects_reuse_and_revokes_the_whole_family;
    revoked_tokens_introspect_as_inactive => sqlite_revoked_tokens_introspect_as_inactive, postgres_revoked_tokens_introspect_as_inactive;
    session_version_bump_invalidates_access_and_refresh_tokens => sqlite_session_version_bump_invalidates_access_and_refresh_tokens, postgres_session_version_bump_invalidates_access_and_refresh_tokens;
    key_rotation_keeps_old_tokens_valid_and_new_tokens_use_the_prepublished_key => sqlite_key_rotation_keeps_old_tokens_valid_and_new_tokens_use_the_prepublished_key, postgres_key_rotation_keeps_old_tokens_valid_and_new_tokens_use_the_prepublished_key;
    discovery_metadata_and_jwks_publish_only_what_is_supported => sqlite_discovery_metadata_and_jwks_publish_only_what_is_supported, postgres_discovery_metadata_and_jwks_publish_only_what_is_supported;
}

/// Item 1: discovery, authorize (PKCE S256 + nonce), hosted login and consent, code exchange with the
/// verifier, ID token verified by the library against the published JWKS, at_hash, UserInfo.
async fn authorization_code_flow_with_pkce_works_with_a_real_openid_connect_client(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let http = library_http();

    let issuer = IssuerUrl::new(fx.issuer(&app)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http)
        .await
        .expect("discovery (with the JWKS) through the library");
    assert_eq!(metadata.issuer(), &issuer);
    let oidc = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.client_id.clone()),
        Some(ClientSecret::new(client.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = oidc
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert!(auth_url.as_str().starts_with(&fx.issuer(&app)));

    let mut browser = Browser::new(&app);
    let walk = walk(
        &mut browser,
        auth_url.as_str(),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    assert!(walk.saw_login, "a new user signs in");
    assert!(walk.saw_consent, "a third-party app asks for consent");
    assert!(walk.redirect.starts_with(REDIRECT_URI));
    assert_eq!(
        walk.param("state").as_deref(),
        Some(csrf_state.secret().as_str())
    );
    assert_eq!(
        walk.param("iss").as_deref(),
        Some(fx.issuer(&app).as_str()),
        "RFC 9207 iss"
    );

    let response = oidc
        .exchange_code(AuthorizationCode::new(walk.code()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange through the library");
    let id_token = response.id_token().expect("an ID token for scope openid");
    let id_verifier = oidc.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("the ID token verifies against the published JWKS, with our nonce");
    assert_eq!(claims.subject().as_str(), fx.user.id);
    assert_eq!(claims.issuer(), &issuer);
    assert_eq!(claims.email().map(|e| e.as_str()), Some(fx.email.as_str()));
    assert!(claims.auth_time().is_some());
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual_hash = AccessTokenHash::from_token(
        response.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(
        &actual_hash, expected_hash,
        "at_hash binds the access token"
    );
    assert!(
        id_token
            .claims(&id_verifier, &Nonce::new("another-nonce".into()))
            .is_err(),
        "the library rejects a wrong nonce, so the check above is real"
    );
    assert!(
        response.refresh_token().is_some(),
        "offline_access gives a refresh token"
    );

    let info: CoreUserInfoClaims = oidc
        .user_info(
            response.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo through the library");
    assert_eq!(info.email().map(|e| e.as_str()), Some(fx.email.as_str()));

    // The library's refresh works too, and rotates.
    let first_refresh = response.refresh_token().unwrap().clone();
    let refreshed = oidc
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh through the library");
    let second_refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let replay = oidc
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert_invalid_grant(replay, "replayed refresh token");
    let after = oidc
        .exchange_refresh_token(&RefreshToken::new(second_refresh.secret().clone()))
        .unwrap()
        .request_async(&http)
        .await;
    assert_invalid_grant(after, "the newest refresh token after a replay");
}

/// Item 1 (continued) over plain HTTP: rotation, reuse detection, family revocation, audit entry.
async fn refresh_token_rotation_detects_reuse_and_revokes_the_whole_family(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let first = tokens(&app, &fx, &client).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let at1 = first["access_token"].as_str().unwrap().to_string();

    let answer = refresh(&app, &fx, &client, &rt1).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let second = answer.json();
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    let at2 = second["access_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "refresh tokens rotate");
    assert_eq!(introspect(&app, &fx, &client, &at2).await["active"], true);
    assert!(
        !audit_actions(&app, &fx)
            .await
            .contains(&"token.refresh_reuse_detected".to_string())
    );

    let replay = refresh(&app, &fx, &client, &rt1).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.json()["error"], "invalid_grant");
    let newest = refresh(&app, &fx, &client, &rt2).await;
    assert_eq!(newest.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        newest.json()["error"],
        "invalid_grant",
        "reuse revokes the whole family, the newest token included"
    );
    for at in [&at1, &at2] {
        assert_eq!(
            introspect(&app, &fx, &client, at).await["active"],
            false,
            "access tokens of the revoked family are inactive"
        );
    }
    assert!(
        audit_actions(&app, &fx)
            .await
            .contains(&"token.refresh_reuse_detected".to_string()),
        "reuse is audited"
    );
}

/// Item 1 (end): revocation then introspection; a refresh token revokes its grant.
async fn revoked_tokens_introspect_as_inactive(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let t = tokens(&app, &fx, &client).await;
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();

    let active = introspect(&app, &fx, &client, at).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], fx.user.id.as_str());
    assert_eq!(active["client_id"], client.client_id.as_str());
    assert_eq!(active["iss"], fx.issuer(&app));
    assert_eq!(active["username"], fx.email.as_str());

    let revoked = post_as(&app, &fx.path("/revoke"), &client, &[("token", at)], &[]).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(
        introspect(&app, &fx, &client, at).await,
        json!({"active": false})
    );
    assert_eq!(
        userinfo(&app, &fx, at).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The refresh token was not touched by revoking the access token.
    let rt_info = introspect(&app, &fx, &client, rt).await;
    assert_eq!(rt_info["active"], true);
    assert_eq!(rt_info["token_type"], "refresh_token");

    let revoked = post_as(&app, &fx.path("/revoke"), &client, &[("token", rt)], &[]).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(introspect(&app, &fx, &client, rt).await["active"], false);
    let answer = refresh(&app, &fx, &client, rt).await;
    assert_eq!(answer.json()["error"], "invalid_grant");
    // Unknown tokens are answered like revoked ones (RFC 7009 §2.2).
    let unknown = post_as(
        &app,
        &fx.path("/revoke"),
        &client,
        &[("token", "no-such-token")],
        &[],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::OK);
}

/// Item 3.
async fn session_version_bump_invalidates_access_and_refresh_tokens(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let t = tokens(&app, &fx, &client).await;
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &fx, &client, at).await["active"], true);
    assert_eq!(userinfo(&app, &fx, at).await.status, StatusCode::OK);

    let audit = NewAuditEvent::new(&fx.org.id, &Actor::operator(), Action::UserSessionsRevoked)
        .target("user", &fx.user.id);
    app.services
        .db
        .tenant(&fx.org.id)
        .bump_session_version(&fx.user.id, &audit)
        .await
        .expect("bump session_version");

    assert_eq!(introspect(&app, &fx, &client, at).await["active"], false);
    let info = userinfo(&app, &fx, at).await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
    assert!(
        info.header("www-authenticate")
            .is_some_and(|h| h.contains("invalid_token"))
    );
    assert_eq!(introspect(&app, &fx, &client, rt).await["active"], false);
    let answer = refresh(&app, &fx, &client, rt).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_grant");
}

/// Item 4. The server's key ring is reloaded when a token names a kid it does not know (at most every
/// 5 s): after the rotation we wait past that gap and present a token with the new `next` kid, which is
/// how another instance's rotation reaches this one without waiting for the 30 s refresh.
async fn key_rotation_keeps_old_tokens_valid_and_new_tokens_use_the_prepublished_key(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let before_jwks = jwks(&app, &fx).await;
    let before_kids = jwks_kids(&before_jwks);
    let old = tokens(&app, &fx, &client).await;
    let old_at = old["access_token"].as_str().unwrap().to_string();
    let old_kid = jwt_parts(&old_at).0["kid"].as_str().unwrap().to_string();
    assert!(before_kids.contains(&old_kid));

    let rotations = latchkey::keys::rotate(&app.services, &Actor::operator(), &fx.org)
        .await
        .expect("rotate");
    assert_eq!(rotations.len(), 1);
    let rotation = &rotations[0];
    assert_eq!(rotation.retired.as_deref(), Some(old_kid.as_str()));
    assert!(
        before_kids.contains(&rotation.activated),
        "the key that became active was already published (as `next`) before the rotation"
    );
    assert!(!before_kids.contains(&rotation.next));

    // Make the server reload: a token naming the brand-new next kid, after the unknown-kid gap.
    app.clock.advance(6);
    let (_, payload) = jwt_parts(&old_at);
    let trigger = hs256(
        &json!({"alg": "HS256", "typ": "at+jwt", "kid": rotation.next}),
        &payload,
        b"whatever",
    );
    assert_eq!(
        introspect(&app, &fx, &client, &trigger).await["active"],
        false
    );

    let after_jwks = jwks(&app, &fx).await;
    let after_kids = jwks_kids(&after_jwks);
    assert!(
        after_kids.contains(&old_kid),
        "the retired key stays published"
    );
    assert!(after_kids.contains(&rotation.activated));
    assert!(after_kids.contains(&rotation.next));
    let still = introspect(&app, &fx, &client, &old_at).await;
    assert_eq!(
        still["active"], true,
        "a token signed before the rotation still verifies"
    );

    let new = tokens(&app, &fx, &client).await;
    let new_kid = jwt_parts(new["access_token"].as_str().unwrap()).0["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        new_kid, rotation.activated,
        "new tokens are signed with the promoted key"
    );
    let id_kid = jwt_parts(new["id_token"].as_str().unwrap()).0["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id_kid, rotation.activated);
    assert_eq!(
        introspect(&app, &fx, &client, new["access_token"].as_str().unwrap()).await["active"],
        true
    );
}

/// Item 5.
async fn discovery_metadata_and_jwks_publish_only_what_is_supported(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let mut browser = Browser::new(&app);
    let answer = browser
        .get(&fx.path("/.well-known/openid-configuration"))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .header("cache-control")
            .is_some_and(|c| c.contains("max-age")),
        "discovery is cacheable: {:?}",
        answer.header("cache-control")
    );
    let meta = answer.json();
    let issuer = fx.issuer(&app);
    assert_eq!(meta["issuer"], issuer.as_str());
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    let algs = meta["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(!algs.is_empty());
    assert!(
        !algs
            .iter()
            .any(|a| a.as_str().unwrap().eq_ignore_ascii_case("none"))
    );
    assert!(!algs.iter().any(|a| a.as_str().unwrap().starts_with("HS")));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    for (key, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("userinfo_endpoint", "/userinfo"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(meta[key], format!("{issuer}{path}"), "{key}");
    }

    // RFC 8414 §3.1: the well-known segment inserted before the issuer's path.
    let rfc8414 = browser
        .get(&format!(
            "/.well-known/oauth-authorization-server/o/{}",
            fx.org.slug
        ))
        .await;
    assert_eq!(rfc8414.status, StatusCode::OK);
    assert_eq!(rfc8414.json()["issuer"], issuer.as_str());
    let missing = browser
        .get("/.well-known/oauth-authorization-server/o/no-such-org")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let answer = browser.get(&fx.path("/jwks")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header("content-type").is_some_and(
        |c| c.starts_with("application/json") || c.starts_with("application/jwk-set+json")
    ));
    assert!(
        answer
            .header("cache-control")
            .is_some_and(|c| c.contains("max-age"))
    );
    let set = answer.json();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the active key and the published next key");
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "private member {private} in {key}"
            );
        }
        assert!(key["kid"].is_string(), "{key}");
        assert_eq!(key["alg"], "RS256", "{key}");
        assert_eq!(key["use"], "sig", "{key}");
        assert_eq!(key["kty"], "RSA", "{key}");
    }

    // Token responses are never cached.
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &client, &p).await;
    let answer = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let error = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(error.status, StatusCode::BAD_REQUEST);
    assert_eq!(error.header("cache-control"), Some("no-store"));
}

// ---------------------------------------------------------------------------------------------------------
// Item 6: CORS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_registered_origins_on_token_jwks_and_userinfo() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut input = new_app(ClientType::Public);
    input.cors_origins = vec![SPA_ORIGIN.into()];
    let spa = register(&app, &fx, input).await;
    let evil = "https://evil.example.com";

    // Token endpoint: one exchange from the SPA's origin, and an error answer for the evil origin.
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &spa, &p).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", p.verifier.as_str()),
    ];
    let answer = post_as(
        &app,
        &fx.path("/token"),
        &spa,
        &form,
        &[("origin", SPA_ORIGIN)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(SPA_ORIGIN)
    );
    let access_token = answer.json()["access_token"].as_str().unwrap().to_string();
    let refresh_token = answer.json()["refresh_token"].as_str().unwrap().to_string();
    let answer = post_as(
        &app,
        &fx.path("/token"),
        &spa,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
        &[("origin", evil)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("access-control-allow-origin"), None);

    // JWKS.
    for (origin, expected) in [(SPA_ORIGIN, Some(SPA_ORIGIN)), (evil, None)] {
        let resp = app
            .http
            .get(app.url(&fx.path("/jwks")))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            expected,
            "jwks from {origin}"
        );
    }

    // UserInfo.
    for (origin, expected) in [(SPA_ORIGIN, Some(SPA_ORIGIN)), (evil, None)] {
        let resp = app
            .http
            .get(app.url(&fx.path("/userinfo")))
            .bearer_auth(&access_token)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            expected,
            "userinfo from {origin}"
        );
    }

    // Preflight.
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url(&fx.path("/token")))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let resp = preflight(SPA_ORIGIN).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some(SPA_ORIGIN)
    );
    assert!(
        resp.headers()
            .get("access-control-allow-methods")
            .is_some_and(|v| v.to_str().unwrap().contains("POST"))
    );
    let resp = preflight(evil).await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert!(resp.headers().get("access-control-allow-methods").is_none());
}

// ---------------------------------------------------------------------------------------------------------
// Item 7: browser flows

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_none_without_a_session_redirects_with_login_required() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let mut browser = Browser::new(&app);
    let answer = browser
        .get(&authorize_path(
            &fx,
            &client,
            SCOPE,
            Some(&p),
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let location = answer.location.unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("login_required")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(fx.issuer(&app).as_str())
    );
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_denied_redirects_with_access_denied_and_no_code() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let mut browser = Browser::new(&app);
    let walk = walk(
        &mut browser,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some((&fx.email, PASSWORD)),
        "deny",
    )
    .await;
    assert!(walk.saw_consent);
    assert_eq!(walk.param("error").as_deref(), Some("access_denied"));
    assert_eq!(walk.param("state").as_deref(), Some("st-123"));
    assert!(walk.param("code").is_none());

    // Nothing was consented: the next request asks again (prompt=none cannot proceed).
    let again = browser
        .get(&authorize_path(
            &fx,
            &client,
            SCOPE,
            Some(&p),
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(
        query_param(&again.location.unwrap(), "error").as_deref(),
        Some("consent_required")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_party_app_skips_consent_and_a_remembered_consent_is_not_asked_again() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut input = new_app(ClientType::Confidential);
    input.first_party = true;
    let first_party = register(&app, &fx, input).await;
    let p = pkce();
    let mut browser = Browser::new(&app);
    let walk1 = walk(
        &mut browser,
        &authorize_path(&fx, &first_party, SCOPE, Some(&p), &[]),
        Some((&fx.email, PASSWORD)),
        "deny",
    )
    .await;
    assert!(walk1.saw_login);
    assert!(!walk1.saw_consent, "first-party apps get no consent screen");
    let answer = redeem(&app, &fx, &first_party, &walk1.code(), &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // A third-party app: consent once, then silent (same browser session).
    let third = confidential_client(&app, &fx).await;
    let walk2 = walk(
        &mut browser,
        &authorize_path(&fx, &third, SCOPE, Some(&p), &[]),
        None,
        "allow",
    )
    .await;
    assert!(!walk2.saw_login, "the session is reused");
    assert!(walk2.saw_consent);
    let walk3 = walk(
        &mut browser,
        &authorize_path(&fx, &third, SCOPE, Some(&p), &[("prompt", "none")]),
        None,
        "deny",
    )
    .await;
    assert!(!walk3.saw_consent && !walk3.saw_login);
    assert!(walk3.param("code").is_some(), "{}", walk3.redirect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_login_with_an_existing_session_shows_the_login_page_again() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let mut browser = Browser::new(&app);
    let first = walk(
        &mut browser,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    assert!(first.param("code").is_some());
    // Without prompt, the session is enough.
    let silent = walk(
        &mut browser,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        None,
        "allow",
    )
    .await;
    assert!(!silent.saw_login && silent.param("code").is_some());

    let answer = browser
        .get(&authorize_path(
            &fx,
            &client,
            SCOPE,
            Some(&p),
            &[("prompt", "login")],
        ))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let location = answer.location.unwrap();
    assert!(
        location.contains(&format!("/o/{}/login?req=", fx.org.slug)),
        "prompt=login forces the login page: {location}"
    );
    let forced = walk(
        &mut browser,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[("prompt", "login")]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    assert!(forced.saw_login);
    assert!(forced.param("code").is_some(), "{}", forced.redirect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_app_gets_es256_id_tokens_that_verify_against_the_jwks() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut input = new_app(ClientType::Confidential);
    input.signing_alg = Some("ES256".into());
    let client = register(&app, &fx, input).await;
    let http = library_http();
    let issuer = IssuerUrl::new(fx.issuer(&app)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery");
    let oidc = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.client_id.clone()),
        Some(ClientSecret::new(client.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = oidc
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new(&app);
    let walk = walk(
        &mut browser,
        auth_url.as_str(),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    let response = oidc
        .exchange_code(AuthorizationCode::new(walk.code()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = response.id_token().expect("id token");
    let raw = id_token.to_string();
    let (header, _) = jwt_parts(&raw);
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().unwrap().to_string();
    let set = jwks(&app, &fx).await;
    let key = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the ES256 kid is published");
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert!(key.get("d").is_none());

    let id_verifier = oidc
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("ES256 ID token verifies");
    assert_eq!(claims.subject().as_str(), fx.user.id);
    let rs_only = oidc
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    assert!(
        id_token.claims(&rs_only, &nonce).is_err(),
        "an RS256-only verifier refuses it, so the alg is really ES256"
    );
    // The access token is ES256 too, and the server accepts it.
    let at = response.access_token().secret();
    assert_eq!(jwt_parts(at).0["alg"], "ES256");
    assert_eq!(userinfo(&app, &fx, at).await.status, StatusCode::OK);
}

/// Creating an ES256 application while the server already has the organization's keys in memory (as
/// happens when an operator registers the app with the CLI against a running server) must not break
/// token issuance for that app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn es256_app_registered_after_the_keys_were_cached_can_get_tokens_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    // Load the organization's key ring (RS256 only) into the server's memory.
    let before = jwks(&app, &fx).await;
    assert!(
        before["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["alg"] == "RS256")
    );
    let mut input = new_app(ClientType::Confidential);
    input.signing_alg = Some("ES256".into());
    let client = register(&app, &fx, input).await;
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &client, &p).await;
    let answer = redeem(&app, &fx, &client, &code, &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let id_token = answer.json()["id_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_parts(&id_token).0["alg"], "ES256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_id_token_hint_redirects_to_the_registered_uri_and_ends_the_session() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let mut browser = Browser::new(&app);
    let signed_in = walk(
        &mut browser,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    let answer = redeem(&app, &fx, &client, &signed_in.code(), &p.verifier).await;
    let id_token = answer.json()["id_token"].as_str().unwrap().to_string();
    let session_cookie = format!("latchkey-{}", fx.org.slug);
    let old_session = browser
        .cookies
        .get(&session_cookie)
        .cloned()
        .expect("a session cookie");

    // An unregistered post_logout_redirect_uri is an error page, not a redirect.
    let bad = browser
        .get(&format!(
            "{}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=s1",
            fx.path("/logout"),
            url::form_urlencoded::byte_serialize(b"https://evil.example.com/").collect::<String>()
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.location.is_none());
    assert!(
        browser.cookies.contains_key(&session_cookie),
        "not signed out"
    );

    let logout_uri: String = url::form_urlencoded::byte_serialize(LOGOUT_URI.as_bytes()).collect();
    let answer = browser
        .get(&format!(
            "{}?id_token_hint={id_token}&post_logout_redirect_uri={logout_uri}&state=bye-1",
            fx.path("/logout")
        ))
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let location = answer.location.unwrap();
    assert!(location.starts_with(LOGOUT_URI), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("bye-1"));
    assert!(
        !browser.cookies.contains_key(&session_cookie),
        "the session cookie is cleared"
    );

    // The old cookie value no longer signs anyone in.
    browser.cookies.insert(session_cookie, old_session);
    let again = browser
        .get(&authorize_path(
            &fx,
            &client,
            SCOPE,
            Some(&p),
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(
        query_param(&again.location.unwrap(), "error").as_deref(),
        Some("login_required")
    );
}

/// Helper used by the negative tests to make sure a value is a JSON OAuth error with `error`.
pub fn oauth_error(answer: &Answer) -> String {
    let body: Value = answer.json();
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error member: {body}"))
        .to_string()
}
