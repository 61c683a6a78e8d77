//! The verified-token cache lets a repeated introspection skip the signature check. It must not change
//! any answer: revocation, the grant, session_version, expiry and the organization are still checked on
//! every request. These tests drive the provider's validation directly, against the real store, so they
//! can see the cache being used; the HTTP tests in `oauth.rs` introspect before revoking and so run the
//! same checks through the server.

use std::sync::Arc;

use latchkey::audit::{Action, Actor, NewAuditEvent};
use latchkey::oauth::claims::AccessClaims;
use latchkey::oauth::introspect::validate_access_token;
use latchkey::oauth::jwt;
use latchkey::oauth::provider::Provider;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::oauth_support::*;

async fn active(provider: &Provider, fx: &Fixture, token: &str) -> Option<Arc<AccessClaims>> {
    validate_access_token(provider, &fx.org, token)
        .await
        .expect("validation does not fail")
        .map(|valid| valid.claims)
}

/// A server, an organization with a confidential client, and a provider of our own over the same store,
/// so the test can look at its cache.
async fn setup() -> (TestApp, Fixture, Client, Arc<Provider>) {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let client = confidential_client(&app, &fx).await;
    let provider = Provider::start(Arc::new(app.services.clone()));
    (app, fx, client, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_is_still_checked_for_organization_session_version_and_revocation() {
    let (app, fx, client, provider) = setup().await;

    let t = tokens(&app, &fx, &client).await;
    let at = t["access_token"].as_str().unwrap();
    let first = active(&provider, &fx, at).await.expect("active");
    assert_eq!(
        provider.verified.len(),
        1,
        "the verified token is remembered"
    );
    let second = active(&provider, &fx, at).await.expect("still active");
    assert!(
        Arc::ptr_eq(&first, &second),
        "the second check answered from the cache"
    );

    // A token differing only in its signature is another string: verified afresh, and refused.
    let (head, rest) = at.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    let other_sig = format!("{head}.{payload}.{}", "A".repeat(342));
    assert!(active(&provider, &fx, &other_sig).await.is_none());
    assert_eq!(
        provider.verified.len(),
        1,
        "a forged token is never remembered"
    );

    // Cached for this organization, inactive at another one.
    let other = fixture(&app).await;
    assert!(active(&provider, &other, at).await.is_none());

    // The user signs out everywhere: the cached token is inactive at once.
    let audit = NewAuditEvent::new(&fx.org.id, &Actor::operator(), Action::UserSessionsRevoked)
        .target("user", &fx.user.id);
    app.services
        .db
        .tenant(&fx.org.id)
        .bump_session_version(&fx.user.id, &audit)
        .await
        .unwrap();
    assert!(active(&provider, &fx, at).await.is_none());

    // A revoked jti: a fresh token, cached, then revoked.
    let t = tokens(&app, &fx, &client).await;
    let at = t["access_token"].as_str().unwrap();
    let claims = active(&provider, &fx, at).await.expect("active");
    active(&provider, &fx, at).await.expect("cached and active");
    provider.mark_revoked(claims.jti.as_deref().unwrap());
    assert!(active(&provider, &fx, at).await.is_none());

    // A revoked grant (for example a refresh token reused): every token of it is inactive at once.
    let t = tokens(&app, &fx, &client).await;
    let at = t["access_token"].as_str().unwrap();
    let claims = active(&provider, &fx, at).await.expect("active");
    active(&provider, &fx, at).await.expect("cached and active");
    let audit = NewAuditEvent::new(&fx.org.id, &Actor::operator(), Action::GrantRevoked);
    app.services
        .db
        .tenant(&fx.org.id)
        .revoke_grant(
            claims.gid.as_ref().unwrap(),
            latchkey::time_now(),
            "test",
            &audit,
        )
        .await
        .unwrap();
    assert!(active(&provider, &fx, at).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_expires_on_time() {
    let (app, fx, client, provider) = setup().await;

    // A client-credentials token with two seconds to live, signed with the organization's active key.
    let now = app.clock.now();
    let keys = provider.keys.get(&app.services, &fx.org.id).await.unwrap();
    let claims = json!({
        "iss": fx.issuer(&app),
        "sub": client.client_id,
        "aud": client.client_id,
        "client_id": client.client_id,
        "iat": now,
        "exp": now + 2,
        "jti": "at_short_lived",
        "scope": "",
    });
    let Value::Object(claims) = claims else {
        unreachable!()
    };
    let token = jwt::sign(&keys, "RS256", jwt::ACCESS_TOKEN_TYP, claims).unwrap();

    active(&provider, &fx, &token).await.expect("active");
    active(&provider, &fx, &token)
        .await
        .expect("cached and active");
    assert_eq!(provider.verified.len(), 1);
    // With no user behind it, only the cache's organization and key checks keep it out of another one.
    let other = fixture(&app).await;
    assert!(active(&provider, &other, &token).await.is_none());
    app.clock.advance(3);
    assert!(
        active(&provider, &fx, &token).await.is_none(),
        "expired, although still in the cache"
    );
    assert_eq!(provider.verified.len(), 1);
}

/// A key leaves the JWKS once every token it signed has expired; should one be withdrawn earlier (an
/// operator pulling a compromised key), tokens it signed stop being active at once, cached or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_of_a_withdrawn_key_is_inactive() {
    let (app, fx, client, provider) = setup().await;
    let t = tokens(&app, &fx, &client).await;
    let at = t["access_token"].as_str().unwrap();
    active(&provider, &fx, at).await.expect("active");
    active(&provider, &fx, at).await.expect("cached and active");
    let (header, _) = jwt_parts(at);
    let kid = header["kid"].as_str().unwrap();
    // No operation withdraws a key early yet: this is the operator editing the database by hand.
    app.db
        .exec(&format!(
            "UPDATE signing_keys SET state = 'retired', retired_at = 1, publish_until = 1 \
             WHERE kid = '{kid}'"
        ))
        .await
        .unwrap();
    provider
        .keys
        .reload(&app.services, &fx.org.id)
        .await
        .unwrap();
    assert!(
        active(&provider, &fx, at).await.is_none(),
        "the cache does not outlive the key"
    );
}
