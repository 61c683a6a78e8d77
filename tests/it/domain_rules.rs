//! The security rules, checked at the domain without HTTP, on SQLite and PostgreSQL: what a CLI command
//! or an admin API calling the same operations gets. Each test shows the refusal and that nothing
//! changed.
//!
//! - a sensitive operation needs a step-up proof made for the same user (and, for a password change, the
//!   same session), and a proof is refused once the session's second factor is older than the window;
//! - the last factor the organization's policy requires cannot be removed;
//! - `offline_access` grants outlive a single sign-out, other grants die with the session, and a
//!   password change or disabling the user ends both.

use latchkey::app::App;
use latchkey::apps::{self, ClientType, GrantType, NewApplication};
use latchkey::audit::{Action, Actor, NewAuditEvent};
use latchkey::error::Error;
use latchkey::kernel::{AppId, GrantId};
use latchkey::mfa::step_up::{self, StepUp};
use latchkey::mfa::{self, MfaPolicy, RemoveError};
use latchkey::oauth::records::Grant;
use latchkey::oauth::{ACR_MFA, ACR_PASSWORD};
use latchkey::orgs::{self, NewOrganization, Organization};
use latchkey::sessions::Session;
use latchkey::sessions::service::{self as sessions, ClientInfo};
use latchkey::signin::{self, SignIn};
use latchkey::users::{self, CredentialKind, NewUser, User};

use crate::helpers::{Backend, TestDb, open_services};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase 42";

/// App on a fresh database. Field order matters: the services drop before the database.
struct Fx {
    services: App,
    org: Organization,
    _db: TestDb,
}

async fn fixture(backend: Backend) -> Option<Fx> {
    let db = TestDb::new(backend).await?;
    let services = open_services(&db).await;
    let org = orgs::create(
        &services,
        &Actor::operator(),
        NewOrganization {
            slug: "acme",
            name: "Acme",
        },
    )
    .await
    .expect("create organization");
    Some(Fx {
        services,
        org,
        _db: db,
    })
}

async fn make_user(fx: &Fx, email: &str) -> User {
    users::create(
        &fx.services,
        &Actor::operator(),
        &fx.org,
        NewUser {
            email,
            password: Some(PASSWORD),
            name: None,
            verified: true,
            role: None,
        },
    )
    .await
    .expect("create user")
}

/// A session for `user`; `mfa` makes it one that proved a second factor just now.
async fn session_of(fx: &Fx, user: &User, mfa: bool) -> (Session, String) {
    let (amr, acr) = if mfa {
        (vec!["pwd".to_string(), "mfa".to_string()], ACR_MFA)
    } else {
        (vec!["pwd".to_string()], ACR_PASSWORD)
    };
    sessions::start(
        &fx.services,
        &fx.org,
        user,
        amr,
        acr,
        &ClientInfo::default(),
    )
    .await
    .expect("start session")
}

/// A step-up proof for `user` made the only way there is: from a session that proved a second factor
/// just now. For tests that set up factors through the domain.
pub async fn fresh_proof(services: &App, org: &Organization, user: &User) -> StepUp {
    let (session, _) = sessions::start(
        services,
        org,
        user,
        vec!["pwd".into(), "mfa".into()],
        ACR_MFA,
        &ClientInfo::default(),
    )
    .await
    .expect("start session");
    let factors = mfa::factors(services, user).await.expect("factors");
    step_up::prove(org, &session, &factors, latchkey::time_now()).expect("a fresh session proves")
}

async fn set_mfa_policy(fx: &mut Fx, policy: MfaPolicy) {
    let mut settings = fx.org.settings.clone();
    settings.mfa.policy = policy;
    fx.org = orgs::update(&fx.services, &Actor::operator(), &fx.org, None, settings)
        .await
        .expect("update organization");
}

/// Turns on email codes for `user` (a factor that needs no device).
async fn enable_email_codes(fx: &Fx, user: &User) {
    let proof = fresh_proof(&fx.services, &fx.org, user).await;
    let factors = mfa::factors(&fx.services, user).await.unwrap();
    let enabled = mfa::enable_email(
        &fx.services,
        &fx.org,
        &proof,
        user,
        &factors,
        &ClientInfo::default(),
    )
    .await
    .unwrap();
    assert!(enabled);
}

async fn password_signs_in(fx: &Fx, user: &User, password: &str) -> bool {
    match signin::password_login(
        &fx.services,
        &fx.org,
        &user.email,
        password,
        "/",
        &ClientInfo::default(),
    )
    .await
    {
        Ok(SignIn::Session(..) | SignIn::SecondFactor(_)) => true,
        Err(signin::LoginError::InvalidCredentials) => false,
        Err(e) => panic!("sign-in failed unexpectedly: {e:?}"),
    }
}

backend_tests! {
    step_up_proofs_are_refused_outside_the_window => sqlite_step_up_proofs_are_refused_outside_the_window, postgres_step_up_proofs_are_refused_outside_the_window;
    a_proof_made_for_one_user_cannot_change_another_users_password => sqlite_a_proof_made_for_one_user_cannot_change_another_users_password, postgres_a_proof_made_for_one_user_cannot_change_another_users_password;
    a_proof_made_for_one_user_cannot_touch_another_users_factors => sqlite_a_proof_made_for_one_user_cannot_touch_another_users_factors, postgres_a_proof_made_for_one_user_cannot_touch_another_users_factors;
    the_last_factor_the_policy_requires_cannot_be_removed => sqlite_the_last_factor_the_policy_requires_cannot_be_removed, postgres_the_last_factor_the_policy_requires_cannot_be_removed;
    offline_access_grants_outlive_a_single_sign_out_and_others_die => sqlite_offline_access_grants_outlive_a_single_sign_out_and_others_die, postgres_offline_access_grants_outlive_a_single_sign_out_and_others_die;
    offline_access_grants_outlive_signing_out_other_sessions => sqlite_offline_access_grants_outlive_signing_out_other_sessions, postgres_offline_access_grants_outlive_signing_out_other_sessions;
    a_password_change_ends_every_session_and_grant => sqlite_a_password_change_ends_every_session_and_grant, postgres_a_password_change_ends_every_session_and_grant;
    disabling_a_user_ends_every_session_and_grant => sqlite_disabling_a_user_ends_every_session_and_grant, postgres_disabling_a_user_ends_every_session_and_grant;
}

/// A session's second-factor proof counts for `step_up_minutes`: at the edge of the window a proof is
/// made, one second later (or from a session that never proved a factor) it is refused. A user with no
/// factor has nothing to step up with and gets a proof.
async fn step_up_proofs_are_refused_outside_the_window(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let ann = make_user(&fx, "ann@example.com").await;
    let (password_only, _) = session_of(&fx, &ann, false).await;
    let none = mfa::factors(&fx.services, &ann).await.unwrap();
    let now = latchkey::time_now();
    assert!(
        step_up::prove(&fx.org, &password_only, &none, now).is_ok(),
        "no factor enrolled: nothing to step up with"
    );

    enable_email_codes(&fx, &ann).await;
    let factors = mfa::factors(&fx.services, &ann).await.unwrap();
    assert!(factors.enrolled());
    let (session, _) = session_of(&fx, &ann, true).await;
    let proved_at = session.mfa_at.expect("the session proved a factor");
    let window = fx.org.settings.mfa.step_up_minutes as i64 * 60;
    assert!(step_up::prove(&fx.org, &session, &factors, proved_at).is_ok());
    assert!(step_up::prove(&fx.org, &session, &factors, proved_at + window).is_ok());
    assert_eq!(
        step_up::prove(&fx.org, &session, &factors, proved_at + window + 1).err(),
        Some(step_up::StepUpRequired),
        "a second factor older than the window proves nothing"
    );
    assert_eq!(
        step_up::prove(&fx.org, &password_only, &factors, now).err(),
        Some(step_up::StepUpRequired),
        "a password-only session must step up once a factor exists"
    );

    // Another organization's session, or someone else's factors, prove nothing either.
    let other_org = orgs::create(
        &fx.services,
        &Actor::operator(),
        NewOrganization {
            slug: "other",
            name: "Other",
        },
    )
    .await
    .unwrap();
    assert!(step_up::prove(&other_org, &session, &factors, proved_at).is_err());
    let bob = make_user(&fx, "bob@example.com").await;
    let (bobs_session, _) = session_of(&fx, &bob, true).await;
    assert!(step_up::prove(&fx.org, &bobs_session, &factors, proved_at).is_err());
}

/// Ann's proof cannot change Bob's password, nor her own from a session it was not made for; Bob's
/// password stays what it was.
async fn a_proof_made_for_one_user_cannot_change_another_users_password(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let ann = make_user(&fx, "ann@example.com").await;
    let bob = make_user(&fx, "bob@example.com").await;
    let anns_proof = fresh_proof(&fx.services, &fx.org, &ann).await;
    let (bobs_session, _) = session_of(&fx, &bob, true).await;
    let client = ClientInfo::default();
    let refused = latchkey::accounts::password::change(
        &fx.services,
        &fx.org,
        &anns_proof,
        &bobs_session,
        &bob,
        PASSWORD,
        NEW_PASSWORD,
        &client,
    )
    .await;
    assert!(matches!(refused, Err(Error::Internal(_))), "{refused:?}");
    assert!(password_signs_in(&fx, &bob, PASSWORD).await);
    assert!(!password_signs_in(&fx, &bob, NEW_PASSWORD).await);

    // Ann's own session, but not the one the proof was made from.
    let (anns_other_session, _) = session_of(&fx, &ann, true).await;
    let refused = latchkey::accounts::password::change(
        &fx.services,
        &fx.org,
        &anns_proof,
        &anns_other_session,
        &ann,
        PASSWORD,
        NEW_PASSWORD,
        &client,
    )
    .await;
    assert!(matches!(refused, Err(Error::Internal(_))), "{refused:?}");
    assert!(password_signs_in(&fx, &ann, PASSWORD).await);

    // With her own proof and session, it works.
    let (session, _) = session_of(&fx, &ann, true).await;
    let factors = mfa::factors(&fx.services, &ann).await.unwrap();
    let proof = step_up::prove(&fx.org, &session, &factors, latchkey::time_now()).unwrap();
    latchkey::accounts::password::change(
        &fx.services,
        &fx.org,
        &proof,
        &session,
        &ann,
        PASSWORD,
        NEW_PASSWORD,
        &client,
    )
    .await
    .expect("password changed");
    assert!(password_signs_in(&fx, &ann, NEW_PASSWORD).await);
}

/// Ann's proof cannot enrol, remove or renew Bob's factors.
async fn a_proof_made_for_one_user_cannot_touch_another_users_factors(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let ann = make_user(&fx, "ann@example.com").await;
    let bob = make_user(&fx, "bob@example.com").await;
    let anns_proof = fresh_proof(&fx.services, &fx.org, &ann).await;
    let client = ClientInfo::default();
    let bobs = mfa::factors(&fx.services, &bob).await.unwrap();
    let enabled = mfa::enable_email(&fx.services, &fx.org, &anns_proof, &bob, &bobs, &client).await;
    assert!(matches!(enabled, Err(Error::Internal(_))), "{enabled:?}");
    assert!(!mfa::factors(&fx.services, &bob).await.unwrap().enrolled());

    enable_email_codes(&fx, &bob).await;
    let bobs = mfa::factors(&fx.services, &bob).await.unwrap();
    let removed = mfa::remove_factor(
        &fx.services,
        &fx.org,
        &anns_proof,
        &bob,
        &bobs,
        CredentialKind::EmailOtp,
        None,
        &client,
    )
    .await;
    assert!(
        matches!(removed, Err(RemoveError::Other(Error::Internal(_)))),
        "{removed:?}"
    );
    assert!(
        mfa::factors(&fx.services, &bob)
            .await
            .unwrap()
            .email()
            .is_some()
    );
    let renewed =
        mfa::recovery::regenerate(&fx.services, &fx.org, &anns_proof, &bob, &client).await;
    assert!(matches!(renewed, Err(Error::Internal(_))), "{renewed:?}");
    assert!(
        mfa::factors(&fx.services, &bob)
            .await
            .unwrap()
            .recovery_codes()
            .is_empty()
    );
}

/// Under a policy that requires a second factor, the user's last one is not removed (whoever calls),
/// and it is still there afterwards; with a second factor enrolled, or under the optional policy, the
/// same removal goes ahead.
async fn the_last_factor_the_policy_requires_cannot_be_removed(backend: Backend) {
    let Some(mut fx) = fixture(backend).await else {
        return;
    };
    set_mfa_policy(&mut fx, MfaPolicy::Everyone).await;
    let ann = make_user(&fx, "ann@example.com").await;
    enable_email_codes(&fx, &ann).await;
    let client = ClientInfo::default();
    let proof = fresh_proof(&fx.services, &fx.org, &ann).await;
    let factors = mfa::factors(&fx.services, &ann).await.unwrap();
    let removed = mfa::remove_factor(
        &fx.services,
        &fx.org,
        &proof,
        &ann,
        &factors,
        CredentialKind::EmailOtp,
        None,
        &client,
    )
    .await;
    assert!(
        matches!(removed, Err(RemoveError::LastRequiredFactor)),
        "{removed:?}"
    );
    let after = mfa::factors(&fx.services, &ann).await.unwrap();
    assert!(after.email().is_some(), "the factor is still there");
    assert_eq!(after.credentials.len(), factors.credentials.len());

    set_mfa_policy(&mut fx, MfaPolicy::Optional).await;
    let removed = mfa::remove_factor(
        &fx.services,
        &fx.org,
        &proof,
        &ann,
        &after,
        CredentialKind::EmailOtp,
        None,
        &client,
    )
    .await
    .expect("optional policy: the factor may go");
    assert!(removed);
    assert!(!mfa::factors(&fx.services, &ann).await.unwrap().enrolled());
}

fn web_app() -> NewApplication {
    NewApplication {
        name: "Web".into(),
        client_type: ClientType::Confidential,
        redirect_uris: vec!["https://app.example.com/callback".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        cors_origins: vec![],
        first_party: false,
        signing_alg: None,
        require_offline_access: false,
        insecure_allow_no_pkce: false,
    }
}

/// A grant made through `session` with `scope`, as the authorization endpoint stores it.
async fn grant_of(fx: &Fx, user: &User, session: &Session, app_id: &AppId, scope: &str) -> Grant {
    let now = latchkey::time_now();
    let grant = Grant {
        id: GrantId::generate(),
        org_id: fx.org.id.clone(),
        app_id: app_id.clone(),
        user_id: Some(user.id.clone()),
        session_id: Some(session.public_id.clone()),
        scope: scope.to_string(),
        auth_time: Some(session.auth_time),
        amr: session.amr.clone(),
        acr: session.acr.clone(),
        session_version: user.session_version,
        created_at: now,
        expires_at: now + 3600,
        revoked_at: None,
        revoked_reason: None,
    };
    let audit = NewAuditEvent::new(&fx.org.id, &Actor::operator(), Action::GrantCreated)
        .target("grant", &grant.id);
    fx.services
        .db
        .tenant(&fx.org.id)
        .create_grant(&grant, None, &audit)
        .await
        .expect("create grant");
    grant
}

async fn grant_live(fx: &Fx, grant: &Grant) -> bool {
    let stored = fx
        .services
        .db
        .tenant(&fx.org.id)
        .grant(&grant.id)
        .await
        .unwrap()
        .unwrap();
    let user = fx
        .services
        .db
        .tenant(&fx.org.id)
        .user_by_id(grant.user_id.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    stored.revoked_at.is_none() && stored.session_version == user.session_version
}

struct Grants {
    user: User,
    session: Session,
    token: String,
    offline: Grant,
    online: Grant,
}

async fn two_grants(fx: &Fx) -> Grants {
    let user = make_user(fx, "ann@example.com").await;
    let app = apps::create(&fx.services, &Actor::operator(), &fx.org, web_app())
        .await
        .unwrap()
        .app;
    let (session, token) = session_of(fx, &user, false).await;
    let offline = grant_of(fx, &user, &session, &app.id, "openid email offline_access").await;
    let online = grant_of(fx, &user, &session, &app.id, "openid email").await;
    assert!(grant_live(fx, &offline).await && grant_live(fx, &online).await);
    Grants {
        user,
        session,
        token,
        offline,
        online,
    }
}

/// Signing out of the session that made them ends the session's normal grant; the `offline_access`
/// grant was asked for to outlive the session, and does.
async fn offline_access_grants_outlive_a_single_sign_out_and_others_die(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let g = two_grants(&fx).await;
    assert!(
        sessions::end(&fx.services, &fx.org, &g.token, &ClientInfo::default())
            .await
            .unwrap()
    );
    assert!(grant_live(&fx, &g.offline).await, "offline_access survives");
    assert!(
        !grant_live(&fx, &g.online).await,
        "the session's grant ends"
    );
    let revoked = fx
        .services
        .db
        .tenant(&fx.org.id)
        .grant(&g.online.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_reason.as_deref(), Some("session_ended"));

    // Ending a session from the session list follows the same rule.
    let (second, _) = session_of(&fx, &g.user, false).await;
    let app_id = g.online.app_id.clone();
    let offline = grant_of(&fx, &g.user, &second, &app_id, "offline_access openid").await;
    let online = grant_of(&fx, &g.user, &second, &app_id, "openid").await;
    assert!(
        sessions::revoke(
            &fx.services,
            &fx.org,
            &g.user,
            &second.public_id,
            &ClientInfo::default()
        )
        .await
        .unwrap()
    );
    assert!(grant_live(&fx, &offline).await);
    assert!(!grant_live(&fx, &online).await);
}

/// "Sign out everywhere else" ends the other sessions' normal grants and keeps their `offline_access`
/// grants; the current session's grants are untouched.
async fn offline_access_grants_outlive_signing_out_other_sessions(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let g = two_grants(&fx).await;
    let (current, _) = session_of(&fx, &g.user, false).await;
    let mine = grant_of(&fx, &g.user, &current, &g.online.app_id, "openid").await;
    let ended = sessions::revoke_others(
        &fx.services,
        &fx.org,
        &g.user,
        &current.public_id,
        &ClientInfo::default(),
    )
    .await
    .unwrap();
    assert_eq!(ended, 1);
    assert!(grant_live(&fx, &g.offline).await);
    assert!(!grant_live(&fx, &g.online).await);
    assert!(
        grant_live(&fx, &mine).await,
        "the current session keeps its grant"
    );
}

/// A password change ends every other session and every grant, `offline_access` included: they are what
/// someone holding the old password or a stolen session would keep.
async fn a_password_change_ends_every_session_and_grant(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let g = two_grants(&fx).await;
    let (current, _) = session_of(&fx, &g.user, true).await;
    let factors = mfa::factors(&fx.services, &g.user).await.unwrap();
    let proof = step_up::prove(&fx.org, &current, &factors, latchkey::time_now()).unwrap();
    let (replacement, _) = latchkey::accounts::password::change(
        &fx.services,
        &fx.org,
        &proof,
        &current,
        &g.user,
        PASSWORD,
        NEW_PASSWORD,
        &ClientInfo::default(),
    )
    .await
    .unwrap();
    assert!(
        !grant_live(&fx, &g.offline).await,
        "offline_access ends too"
    );
    assert!(!grant_live(&fx, &g.online).await);
    let old = fx
        .services
        .db
        .tenant(&fx.org.id)
        .session_by_hash(&g.session.id_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(old.revoked_at.is_some(), "the other session is signed out");
    let user = fx
        .services
        .db
        .tenant(&fx.org.id)
        .user_by_id(&g.user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replacement.session_version, user.session_version);
    assert!(user.session_version > g.user.session_version);
}

/// Disabling a user (the CLI's `user disable` calls this same operation) ends every session and every
/// grant, `offline_access` included, and enabling them again brings none back.
async fn disabling_a_user_ends_every_session_and_grant(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let g = two_grants(&fx).await;
    let change = users::set_disabled(
        &fx.services,
        &Actor::operator(),
        &fx.org,
        &g.user.email,
        true,
    )
    .await
    .unwrap();
    assert!(change.changed);
    assert!(
        !grant_live(&fx, &g.offline).await,
        "offline_access ends too"
    );
    assert!(!grant_live(&fx, &g.online).await);
    users::set_disabled(
        &fx.services,
        &Actor::operator(),
        &fx.org,
        &g.user.email,
        false,
    )
    .await
    .unwrap();
    assert!(
        !grant_live(&fx, &g.offline).await,
        "enabling brings no grant back"
    );
    assert!(
        sessions::from_cookie(&fx.services, &fx.org, &g.token)
            .await
            .unwrap()
            .is_none()
    );
}
