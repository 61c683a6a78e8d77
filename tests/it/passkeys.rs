//! Passkeys over HTTP with a software authenticator (webauthn-authenticator-rs): registered on the
//! account page, used as the second factor after a password, and as the whole sign-in ("Sign in with a
//! passkey"). Ceremony state is single use; a tampered assertion is refused.
//!
//! The software authenticator cannot make discoverable credentials, so the passwordless test names the
//! credential in `allowCredentials` and supplies the user handle itself, as a resident authenticator
//! would (the handle is not signed). Real discoverable credentials are covered in Chromium
//! (tests/browser/passkeys.test.mjs).

use reqwest::StatusCode;
use serde_json::Value;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::AllowCredentials;

use crate::helpers::{Backend, TestApp};
use crate::oauth_support::*;

/// Signs in with the password; returns the browser and the redirect it got.
async fn password_step<'a>(app: &'a TestApp, fx: &Fixture) -> (Browser<'a>, Answer) {
    let mut b = Browser::new(app);
    let page = b.get(&fx.path("/login")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("data-webauthn=\"sign-in\""),
        "the sign-in page offers passkeys on a domain-name public URL"
    );
    let csrf = hidden_field(&page.body, "csrf");
    let answer = b
        .post_form(
            &fx.path("/login"),
            &[
                ("csrf", &csrf),
                ("email", &fx.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    (b, answer)
}

async fn options(b: &mut Browser<'_>, path: &str, csrf: &str) -> Value {
    let answer = b.post_form(path, &[("csrf", csrf)]).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    answer.json()
}

fn origin(app: &TestApp) -> Url {
    Url::parse(&app.base).unwrap()
}

async fn register(
    app: &TestApp,
    fx: &Fixture,
    b: &mut Browser<'_>,
    authenticator: &mut WebauthnAuthenticator<SoftPasskey>,
    name: &str,
) -> Answer {
    let page = b.get(&fx.path("/account/passkeys/new")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("src=\"/static/webauthn.js\""));
    let csrf = hidden_field(&page.body, "csrf");
    let reply = options(b, &fx.path("/account/passkeys/options"), &csrf).await;
    let mut ccr: CreationChallengeResponse =
        serde_json::from_value(reply["options"].clone()).unwrap();
    let selection = ccr.public_key.authenticator_selection.as_mut().unwrap();
    assert!(selection.require_resident_key, "passkeys are discoverable");
    // The software authenticator cannot store resident keys; the server does not depend on it.
    selection.require_resident_key = false;
    let credential = authenticator
        .do_registration(origin(app), ccr)
        .expect("software registration");
    let credential = serde_json::to_string(&credential).unwrap();
    let state = reply["state"].as_str().unwrap().to_string();
    let answer = b
        .post_form(
            &fx.path("/account/passkeys"),
            &[
                ("csrf", &csrf),
                ("state", &state),
                ("credential", &credential),
                ("name", name),
            ],
        )
        .await;
    // Replaying the same answer finds no ceremony state.
    let replay = b
        .post_form(
            &fx.path("/account/passkeys"),
            &[
                ("csrf", &csrf),
                ("state", &state),
                ("credential", &credential),
                ("name", name),
            ],
        )
        .await;
    assert!(
        replay.status == StatusCode::BAD_REQUEST || replay.status == StatusCode::SEE_OTHER,
        "{}",
        replay.status
    );
    answer
}

/// The credential id of the user's (only) passkey, as stored.
async fn passkey_id(app: &TestApp, fx: &Fixture) -> Vec<u8> {
    app.services
        .db
        .tenant(&fx.org.id)
        .user_credentials(&fx.user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.kind == latchkey::users::CredentialKind::Webauthn)
        .expect("a passkey")
        .secret
}

async fn latest_session_amr(app: &TestApp, fx: &Fixture) -> String {
    let rows = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = '{}' AND amr LIKE '%\"hwk\"%' \
             AND amr LIKE '%\"mfa\"%' AND acr = 'urn:latchkey:acr:mfa'",
            fx.user.id
        ))
        .await;
    format!("{rows}")
}

async fn passkeys_register_and_sign_in(backend: Backend) {
    let Some(app) = TestApp::spawn_localhost(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let mut laptop = WebauthnAuthenticator::new(SoftPasskey::new(true));

    // A user without factors signs in with the password alone, then adds a passkey.
    let (mut b, answer) = password_step(&app, &fx).await;
    assert_eq!(
        answer.location.as_deref(),
        Some(app.url(&fx.path("/account")).as_str())
    );
    let added = register(&app, &fx, &mut b, &mut laptop, "Laptop").await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(
        added.body.contains("Save your recovery codes"),
        "the first factor comes with recovery codes"
    );
    let page = b.get(&fx.path("/account")).await;
    assert!(page.body.contains("Passkey: Laptop"), "{}", page.body);
    assert!(page.body.contains("never used"));

    // Second factor: the password now leads to the challenge, which a passkey answers.
    let (mut b2, answer) = password_step(&app, &fx).await;
    assert_eq!(
        answer.location.as_deref(),
        Some(app.url(&fx.path("/login/mfa")).as_str())
    );
    let challenge = b2.get(&fx.path("/login/mfa")).await;
    assert!(
        challenge.body.contains("Use a passkey"),
        "{}",
        challenge.body
    );
    let csrf = hidden_field(&challenge.body, "csrf");
    let reply = options(&mut b2, &fx.path("/login/mfa/passkey/options"), &csrf).await;
    let rcr: RequestChallengeResponse = serde_json::from_value(reply["options"].clone()).unwrap();
    assert_eq!(rcr.public_key.allow_credentials.len(), 1);
    let assertion = laptop
        .do_authentication(origin(&app), rcr)
        .expect("software assertion");
    let assertion = serde_json::to_string(&assertion).unwrap();
    let done = b2
        .post_form(
            &fx.path("/login/mfa"),
            &[("csrf", &csrf), ("method", "passkey"), ("code", &assertion)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(app.url(&fx.path("/account")).as_str())
    );
    assert_eq!(latest_session_amr(&app, &fx).await, "1");
    let page = b2.get(&fx.path("/account")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("last used"), "the use is recorded");

    // A second authenticator, added from the freshly verified session (no recovery codes this time).
    let mut phone = WebauthnAuthenticator::new(SoftPasskey::new(true));
    let added = register(&app, &fx, &mut b2, &mut phone, "Phone").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = b2.get(&fx.path("/account?done=passkey")).await;
    assert!(page.body.contains("Passkey: Laptop") && page.body.contains("Passkey: Phone"));
    assert!(page.body.contains("Your passkey is added."));
    // Removing one needs nothing more (the session proved a factor just now) and leaves the other.
    let phone_id = app
        .services
        .db
        .tenant(&fx.org.id)
        .user_credentials(&fx.user.id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name.as_deref() == Some("Phone"))
        .unwrap()
        .id;
    let csrf = hidden_field(&page.body, "csrf");
    let removed = b2
        .post_form(
            &fx.path("/account/mfa/remove"),
            &[
                ("csrf", &csrf),
                ("factor", "passkey"),
                ("credential", &phone_id),
            ],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let page = b2.get(&fx.path("/account")).await;
    assert!(page.body.contains("Passkey: Laptop") && !page.body.contains("Passkey: Phone"));

    // Passwordless: "Sign in with a passkey".
    let mut b3 = Browser::new(&app);
    let login = b3.get(&fx.path("/login")).await;
    let csrf = hidden_field(&login.body, "csrf");
    let reply = options(&mut b3, &fx.path("/login/passkey/options"), &csrf).await;
    let state = reply["state"].as_str().unwrap().to_string();
    let mut rcr: RequestChallengeResponse =
        serde_json::from_value(reply["options"].clone()).unwrap();
    assert!(
        rcr.public_key.allow_credentials.is_empty(),
        "no user is known yet: the authenticator offers its discoverable passkeys"
    );
    let cred_id = passkey_id(&app, &fx).await;
    rcr.public_key.allow_credentials.push(AllowCredentials {
        type_: "public-key".into(),
        id: cred_id.into(),
        transports: None,
    });
    let mut assertion = laptop
        .do_authentication(origin(&app), rcr)
        .expect("software assertion");
    let handle = hex::decode(fx.user.id.strip_prefix("usr_").unwrap()).unwrap();
    assertion.response.user_handle = Some(handle.into());
    let good = serde_json::to_string(&assertion).unwrap();

    // A tampered signature is refused (and uses up the ceremony).
    let mut forged = assertion.clone();
    let mut signature: Vec<u8> = forged.response.signature.clone().into();
    let last = signature.len() - 1;
    signature[last] ^= 1;
    forged.response.signature = signature.into();
    let refused = b3
        .post_form(
            &fx.path("/login/passkey"),
            &[
                ("csrf", &csrf),
                ("state", &state),
                ("credential", &serde_json::to_string(&forged).unwrap()),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(!b3.cookies.keys().any(|k| k.starts_with("latchkey-org")));
    let replayed = b3
        .post_form(
            &fx.path("/login/passkey"),
            &[("csrf", &csrf), ("state", &state), ("credential", &good)],
        )
        .await;
    assert_eq!(
        replayed.status,
        StatusCode::UNAUTHORIZED,
        "the ceremony is single use"
    );

    // A fresh ceremony with a genuine assertion signs in.
    let reply = options(&mut b3, &fx.path("/login/passkey/options"), &csrf).await;
    let state = reply["state"].as_str().unwrap().to_string();
    let mut rcr: RequestChallengeResponse =
        serde_json::from_value(reply["options"].clone()).unwrap();
    rcr.public_key.allow_credentials.push(AllowCredentials {
        type_: "public-key".into(),
        id: passkey_id(&app, &fx).await.into(),
        transports: None,
    });
    let mut assertion = laptop.do_authentication(origin(&app), rcr).unwrap();
    assertion.response.user_handle = Some(
        hex::decode(fx.user.id.strip_prefix("usr_").unwrap())
            .unwrap()
            .into(),
    );
    let signed_in = b3
        .post_form(
            &fx.path("/login/passkey"),
            &[
                ("csrf", &csrf),
                ("state", &state),
                ("credential", &serde_json::to_string(&assertion).unwrap()),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(
        signed_in.location.as_deref(),
        Some(app.url(&fx.path("/account")).as_str())
    );
    let page = b3.get(&fx.path("/account")).await;
    assert_eq!(page.status, StatusCode::OK, "signed in without a password");
    assert_eq!(latest_session_amr(&app, &fx).await, "2");

    let audit = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE org_id = '{}' AND action IN \
             ('mfa.enrolled', 'mfa.passkey.used', 'login.failed')",
            fx.org.id
        ))
        .await;
    assert_eq!(
        audit, 5,
        "enrolled twice, used twice (second factor, passwordless), one failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_register_and_sign_in_sqlite() {
    passkeys_register_and_sign_in(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_register_and_sign_in_postgres() {
    passkeys_register_and_sign_in(Backend::Postgres).await;
}

/// On an IP-address public URL (browsers refuse those as relying parties) passkeys are simply off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_are_off_on_an_ip_address_public_url() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let fx = fixture(&app).await;
    let page = app.get(&fx.path("/login")).await.text().await.unwrap();
    assert!(!page.contains("data-webauthn"));
    let mut b = Browser::new(&app);
    let login = b.get(&fx.path("/login")).await;
    let csrf = hidden_field(&login.body, "csrf");
    let answer = b
        .post_form(&fx.path("/login/passkey/options"), &[("csrf", &csrf)])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
}

/// Every organization shares the relying party (the host), so a browser may offer a passkey of another
/// organization's user: the sign-in refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_of_another_organizations_user_does_not_sign_in() {
    let app = TestApp::spawn_localhost(Backend::Sqlite).await.unwrap();
    let home = fixture(&app).await;
    let elsewhere = fixture(&app).await;
    let mut key = WebauthnAuthenticator::new(SoftPasskey::new(true));
    let (mut b, _) = password_step(&app, &home).await;
    let added = register(&app, &home, &mut b, &mut key, "Laptop").await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);

    let mut stranger = Browser::new(&app);
    let login = stranger.get(&elsewhere.path("/login")).await;
    let csrf = hidden_field(&login.body, "csrf");
    let reply = options(
        &mut stranger,
        &elsewhere.path("/login/passkey/options"),
        &csrf,
    )
    .await;
    let state = reply["state"].as_str().unwrap().to_string();
    let mut rcr: RequestChallengeResponse =
        serde_json::from_value(reply["options"].clone()).unwrap();
    rcr.public_key.allow_credentials.push(AllowCredentials {
        type_: "public-key".into(),
        id: passkey_id(&app, &home).await.into(),
        transports: None,
    });
    let mut assertion = key.do_authentication(origin(&app), rcr).unwrap();
    assertion.response.user_handle = Some(
        hex::decode(home.user.id.strip_prefix("usr_").unwrap())
            .unwrap()
            .into(),
    );
    let answer = stranger
        .post_form(
            &elsewhere.path("/login/passkey"),
            &[
                ("csrf", &csrf),
                ("state", &state),
                ("credential", &serde_json::to_string(&assertion).unwrap()),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let page = stranger.get(&elsewhere.path("/account")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "not signed in anywhere");
    let page = stranger.get(&home.path("/account")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}
