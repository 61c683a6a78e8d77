//! Regressions for defects found in review: each test shows the attack or the failing flow and the
//! behaviour that must hold now.

use latchkey::apps::ClientType;
use latchkey::audit::Actor;
use latchkey::users::NewUser;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, TokenResponse,
};
use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp};
use crate::oauth_support::*;

/// Browsers send `Origin: null` on form posts from a page with `Referrer-Policy: no-referrer`. Hosted pages
/// keep that strict policy, and such a post is accepted only when the browser's own Fetch Metadata says it
/// came from our origin (`Sec-Fetch-Site: same-origin`); a null origin from anywhere else is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_forms_accept_a_null_origin_only_with_same_origin_fetch_metadata() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let p = pkce();
    let mut browser = Browser::new(&app);
    let start = browser
        .get(&authorize_path(&fx, &client, SCOPE, Some(&p), &[]))
        .await;
    let login = browser.get(start.location.as_deref().unwrap()).await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.header("referrer-policy"), Some("no-referrer"));
    // JSON endpoints keep the strictest policy.
    let meta = browser
        .get(&fx.path("/.well-known/openid-configuration"))
        .await;
    assert_eq!(meta.header("referrer-policy"), Some("no-referrer"));
    let csrf = hidden_field(&login.body, "csrf");
    let req = hidden_field(&login.body, "req");
    let post = |fetch_site: Option<&'static str>, referer: Option<String>| {
        let mut request = app
            .http
            .post(app.url(&fx.path("/login")))
            .header("origin", "null")
            .header("cookie", browser.cookie_header())
            .form(&[
                ("req", req.as_str()),
                ("csrf", csrf.as_str()),
                ("email", fx.email.as_str()),
                ("password", PASSWORD),
            ]);
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(referer) = referer {
            request = request.header("referer", referer);
        }
        request.send()
    };
    // A sandboxed frame on another site, or a client that says nothing: refused.
    for site in [Some("cross-site"), Some("same-site"), Some("none"), None] {
        let refused = post(site, None).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{site:?}");
    }
    // Fetch Metadata outranks a Referer: a cross-site post with a forged-looking Referer is refused.
    let refused = post(Some("cross-site"), Some(app.url("/"))).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Our own page's post, as a browser under no-referrer sends it: accepted.
    let accepted = post(Some("same-origin"), None).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
}

/// prompt=consent used to send the user back to the consent page after every "Allow".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_consent_issues_a_code_after_the_user_allows() {
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
    assert!(first.saw_consent && first.param("code").is_some());
    let again = walk(
        &mut browser,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[("prompt", "consent")]),
        None,
        "allow",
    )
    .await;
    assert!(
        again.saw_consent,
        "prompt=consent shows the consent page even though consent exists"
    );
    assert!(
        again.param("code").is_some(),
        "and Allow then issues a code: {}",
        again.redirect
    );
}

/// max_age=0 used to send the user back to the login page right after signing in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_zero_is_satisfied_by_the_sign_in_it_asked_for() {
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
    app.clock.advance(2);
    let fresh = walk(
        &mut browser,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[("max_age", "0")]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    assert!(
        fresh.saw_login,
        "an older sign-in does not satisfy max_age=0"
    );
    assert!(
        fresh.param("code").is_some(),
        "the new sign-in does: {}",
        fresh.redirect
    );
}

/// Any ID token of the organization used to sign out whoever was signed in, without confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_another_users_id_token_asks_for_confirmation() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    // The attacker is another user of the same organization with their own ID token.
    let attacker_email = "mallory@example.com";
    latchkey::users::create(
        &app.services,
        &Actor::operator(),
        &fx.org,
        NewUser {
            email: attacker_email,
            password: Some(PASSWORD),
            name: None,
            verified: true,
            role: None,
        },
    )
    .await
    .unwrap();
    let p = pkce();
    let mut attacker = Browser::new(&app);
    let code = walk(
        &mut attacker,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some((attacker_email, PASSWORD)),
        "allow",
    )
    .await
    .code();
    let attacker_id_token = redeem(&app, &fx, &client, &code, &p.verifier).await.json()["id_token"]
        .as_str()
        .unwrap()
        .to_string();

    let mut victim = Browser::new(&app);
    let signed_in = walk(
        &mut victim,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    assert!(signed_in.param("code").is_some());
    let cookie = format!("latchkey-{}", fx.org.slug);
    let answer = victim
        .get(&format!(
            "{}?id_token_hint={attacker_id_token}",
            fx.path("/logout")
        ))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "a confirmation page, not an immediate sign-out"
    );
    assert!(
        answer.body.contains("Do you want to sign out"),
        "{}",
        answer.body
    );
    let still = walk(
        &mut victim,
        &authorize_path(&fx, &client, SCOPE, Some(&p), &[]),
        None,
        "allow",
    )
    .await;
    assert!(
        !still.saw_login && still.param("code").is_some(),
        "the victim is still signed in"
    );
    assert!(victim.cookies.contains_key(&cookie));
}

/// A confidential client used to be able to introspect other clients' tokens and read their users' emails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_only_describes_the_callers_own_tokens() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let owner = confidential_client(&app, &fx).await;
    let other = confidential_client(&app, &fx).await;
    let p = pkce();
    let code = sign_in_and_get_code(&app, &fx, &owner, &p).await;
    let tokens = redeem(&app, &fx, &owner, &code, &p.verifier).await.json();
    for token in [
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    ] {
        assert_eq!(introspect(&app, &fx, &owner, token).await["active"], true);
        let foreign = introspect(&app, &fx, &other, token).await;
        assert_eq!(
            foreign,
            serde_json::json!({"active": false}),
            "another client learns nothing"
        );
    }
}

/// EdDSA ID tokens carry an `at_hash` that relying-party libraries accept (SHA-512 based for Ed25519).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_id_tokens_carry_an_at_hash_the_client_library_accepts() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let mut input = new_app(ClientType::Confidential);
    input.signing_alg = Some("EdDSA".into());
    let client = register(&app, &fx, input).await;
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(fx.issuer(&app)).unwrap(), &http)
            .await
            .unwrap();
    let oidc = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.client_id.clone()),
        Some(ClientSecret::new(client.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = oidc
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new(&app);
    let code = walk(
        &mut browser,
        url.as_str(),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await
    .code();
    let response = oidc
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = response.id_token().expect("id token");
    let id_verifier = oidc
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EdDsa]);
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("EdDSA ID token verifies");
    let expected = claims.access_token_hash().expect("at_hash present");
    let computed = AccessTokenHash::from_token(
        response.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&computed, expected);
}
