//! One door per tenant: every aggregate's rows of organization B are invisible, and untouchable, through
//! organization A's store handle (`Db::tenant(&a.id)`), on SQLite and PostgreSQL. Each test builds B's
//! rows, tries to read and change them through A's handle, and checks through B's handle that nothing
//! changed. A store query that forgot its organization filter fails here.

use latchkey::app::App;
use latchkey::apps::{self, ClientType, GrantType, NewApplication};
use latchkey::audit::{Action, Actor, NewAuditEvent};
use latchkey::email::OutgoingEmail;
use latchkey::kernel::{GrantId, OrgId, SessionId};
use latchkey::model::onetime::OneTimeToken;
use latchkey::oauth::records::{AuthorizationCode, Grant, RefreshToken};
use latchkey::orgs::{self, NewOrganization, Organization, Role};
use latchkey::sessions::Session;
use latchkey::storage::StoreError;
use latchkey::users::{self, CredentialKind, NewUser, User};

use crate::helpers::{Backend, TestDb, open_services};

/// Two organizations, each with one user; B also has an application. Field order: services drop first.
struct Two {
    services: App,
    a: Organization,
    b: Organization,
    b_user: User,
    _db: TestDb,
}

async fn two_orgs(backend: Backend) -> Option<Two> {
    let db = TestDb::new(backend).await?;
    let services = open_services(&db).await;
    let make = |slug: &'static str| {
        let services = services.clone();
        async move {
            orgs::create(
                &services,
                &Actor::operator(),
                NewOrganization { slug, name: slug },
            )
            .await
            .unwrap()
        }
    };
    let a = make("alpha").await;
    let b = make("beta").await;
    let new_user = |email| NewUser {
        email,
        password: Some("a long enough password"),
        name: None,
        verified: true,
        role: Some(Role::Member),
    };
    users::create(&services, &Actor::operator(), &a, new_user("a@example.com"))
        .await
        .unwrap();
    let b_user = users::create(&services, &Actor::operator(), &b, new_user("b@example.com"))
        .await
        .unwrap();
    Some(Two {
        services,
        a,
        b,
        b_user,
        _db: db,
    })
}

/// An application of organization B.
async fn beta_app(
    t: &Two,
    client_type: ClientType,
    grant_types: Vec<GrantType>,
) -> apps::CreatedApplication {
    apps::create(
        &t.services,
        &Actor::operator(),
        &t.b,
        NewApplication {
            name: "Beta app".into(),
            client_type,
            redirect_uris: vec!["https://beta.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types,
            cors_origins: vec![],
            first_party: false,
            signing_alg: None,
            require_offline_access: false,
            insecure_allow_no_pkce: false,
        },
    )
    .await
    .unwrap()
}

fn event(org: &OrgId, action: Action) -> NewAuditEvent {
    NewAuditEvent::new(org, &Actor::operator(), action)
}

fn session_of(org: &Organization, user: &User, id_hash: &[u8]) -> Session {
    let now = latchkey::time_now();
    Session {
        id_hash: id_hash.to_vec(),
        public_id: SessionId::generate(),
        org_id: org.id.clone(),
        user_id: user.id.clone(),
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: None,
        ip: None,
        user_agent: None,
        session_version: user.session_version,
        created_at: now,
        last_seen_at: now,
        expires_at: now + 3600,
        revoked_at: None,
        mfa_at: None,
    }
}

backend_tests! {
    users_and_members_of_another_organization_are_invisible => sqlite_users_and_members_of_another_organization_are_invisible, postgres_users_and_members_of_another_organization_are_invisible;
    credentials_of_another_organizations_user_are_invisible_and_untouched => sqlite_credentials_of_another_organizations_user_are_invisible_and_untouched, postgres_credentials_of_another_organizations_user_are_invisible_and_untouched;
    applications_of_another_organization_are_invisible_and_untouched => sqlite_applications_of_another_organization_are_invisible_and_untouched, postgres_applications_of_another_organization_are_invisible_and_untouched;
    sessions_of_another_organization_are_invisible_and_cannot_be_revoked => sqlite_sessions_of_another_organization_are_invisible_and_cannot_be_revoked, postgres_sessions_of_another_organization_are_invisible_and_cannot_be_revoked;
    grants_codes_and_refresh_tokens_of_another_organization_are_invisible => sqlite_grants_codes_and_refresh_tokens_of_another_organization_are_invisible, postgres_grants_codes_and_refresh_tokens_of_another_organization_are_invisible;
    consents_of_another_organization_are_invisible_and_cannot_be_made => sqlite_consents_of_another_organization_are_invisible_and_cannot_be_made, postgres_consents_of_another_organization_are_invisible_and_cannot_be_made;
    one_time_tokens_of_another_organization_cannot_be_read_or_spent => sqlite_one_time_tokens_of_another_organization_cannot_be_read_or_spent, postgres_one_time_tokens_of_another_organization_cannot_be_read_or_spent;
    keys_outbox_and_audit_of_another_organization_are_invisible => sqlite_keys_outbox_and_audit_of_another_organization_are_invisible, postgres_keys_outbox_and_audit_of_another_organization_are_invisible;
    records_of_another_organization_are_refused_before_anything_is_written => sqlite_records_of_another_organization_are_refused_before_anything_is_written, postgres_records_of_another_organization_are_refused_before_anything_is_written;
}

async fn users_and_members_of_another_organization_are_invisible(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let user = &t.b_user;
    assert_eq!(a.user_by_id(&user.id).await.unwrap(), None);
    assert_eq!(a.user_by_email(&user.email_normalized).await.unwrap(), None);
    assert!(
        a.list_users()
            .await
            .unwrap()
            .iter()
            .all(|u| u.id != user.id)
    );
    assert_eq!(a.member_role(&user.id).await.unwrap(), None);
    assert!(
        a.list_members()
            .await
            .unwrap()
            .iter()
            .all(|m| m.user_id != user.id)
    );
    let now = latchkey::time_now();
    let bumped = a
        .bump_session_version(&user.id, &event(&t.a.id, Action::UserSessionsRevoked))
        .await;
    assert!(matches!(bumped, Err(StoreError::NotFound(_))), "{bumped:?}");
    let renamed = a
        .update_user_name(
            &user.id,
            Some("Mallory"),
            now,
            &event(&t.a.id, Action::UserUpdated),
        )
        .await;
    assert!(
        matches!(renamed, Err(StoreError::NotFound(_))),
        "{renamed:?}"
    );
    let disabled = a
        .set_user_disabled(&user.id, true, now, &event(&t.a.id, Action::UserDisabled))
        .await
        .unwrap();
    assert_eq!(disabled, None, "nothing to disable in this organization");

    let stored = b
        .user_by_id(&user.id)
        .await
        .unwrap()
        .expect("B still sees its user");
    assert_eq!(stored.session_version, user.session_version);
    assert_eq!(stored.name, None);
    assert!(!stored.disabled);
    assert_eq!(b.member_role(&user.id).await.unwrap(), Some(Role::Member));
}

async fn credentials_of_another_organizations_user_are_invisible_and_untouched(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let user = &t.b_user;
    let password = b
        .credentials(&user.id, CredentialKind::Password)
        .await
        .unwrap();
    assert_eq!(password.len(), 1);
    let password = &password[0];
    assert!(
        a.credentials(&user.id, CredentialKind::Password)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(a.user_credentials(&user.id).await.unwrap().is_empty());
    let now = latchkey::time_now();
    let overwritten = a
        .update_credential_secret(
            &password.id,
            b"forged",
            &event(&t.a.id, Action::CredentialRehashed),
        )
        .await;
    assert!(
        matches!(overwritten, Err(StoreError::NotFound(_))),
        "{overwritten:?}"
    );
    let mut planted = password.clone();
    planted.id = latchkey::kernel::CredentialId::generate();
    planted.kind = CredentialKind::RecoveryCode;
    let added = a
        .add_credentials(
            &user.id,
            &[planted],
            &[],
            &event(&t.a.id, Action::MfaEnrolled),
        )
        .await;
    assert!(matches!(added, Err(StoreError::NotFound(_))), "{added:?}");
    let deleted = a
        .delete_credentials(
            &user.id,
            std::slice::from_ref(&password.id),
            &event(&t.a.id, Action::MfaRemoved),
        )
        .await
        .unwrap();
    assert_eq!(deleted, 0);
    let used = a
        .use_credential(
            &password.id,
            true,
            now,
            None,
            &event(&t.a.id, Action::MfaSucceeded),
        )
        .await
        .unwrap();
    assert!(
        !used,
        "another organization's credential cannot be consumed"
    );
    let touched = a
        .update_credential_use(
            &password.id,
            "{}",
            now,
            &event(&t.a.id, Action::MfaPasskeyUsed),
        )
        .await;
    assert!(
        matches!(touched, Err(StoreError::NotFound(_))),
        "{touched:?}"
    );

    let after = b.user_credentials(&user.id).await.unwrap();
    assert_eq!(
        after,
        vec![password.clone()],
        "B's credentials are exactly as they were"
    );
}

async fn applications_of_another_organization_are_invisible_and_untouched(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let created = beta_app(
        &t,
        ClientType::Confidential,
        vec![GrantType::AuthorizationCode],
    )
    .await;
    let app = created.app;
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    assert_eq!(a.app_by_client_id(&app.client_id).await.unwrap(), None);
    assert!(a.list_apps().await.unwrap().is_empty());
    let mut renamed = app.clone();
    renamed.name = "Hijacked".into();
    renamed.org_id = t.a.id.clone();
    let updated = a
        .update_app(&renamed, &event(&t.a.id, Action::AppUpdated))
        .await;
    assert!(
        matches!(updated, Err(StoreError::NotFound(_))),
        "{updated:?}"
    );
    let rotated = a
        .replace_client_secret(
            &app.id,
            b"forged",
            latchkey::time_now(),
            None,
            &event(&t.a.id, Action::OrgUpdated),
        )
        .await;
    assert!(
        matches!(rotated, Err(StoreError::NotFound(_))),
        "{rotated:?}"
    );
    assert_eq!(
        b.app_by_client_id(&app.client_id).await.unwrap().as_ref(),
        Some(&app),
        "B's application is unchanged"
    );
}

async fn sessions_of_another_organization_are_invisible_and_cannot_be_revoked(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let session = session_of(&t.b, &t.b_user, b"beta-session-hash-0123456789abcd");
    b.create_session(&session, &event(&t.b.id, Action::OrgUpdated))
        .await
        .unwrap();
    let now = latchkey::time_now();
    assert_eq!(a.session_by_hash(&session.id_hash).await.unwrap(), None);
    assert!(a.user_sessions(&t.b_user.id, now).await.unwrap().is_empty());
    a.touch_session(&session.id_hash, now + 100).await.unwrap();
    assert!(
        !a.revoke_session(
            &session.id_hash,
            &[],
            now,
            &event(&t.a.id, Action::OrgUpdated)
        )
        .await
        .unwrap()
    );
    assert!(
        !a.revoke_user_session(
            &t.b_user.id,
            &session.public_id,
            &[],
            now,
            &event(&t.a.id, Action::SessionRevoked)
        )
        .await
        .unwrap()
    );
    let others = a
        .revoke_other_sessions(
            &t.b_user.id,
            &SessionId::generate(),
            &[],
            now,
            &event(&t.a.id, Action::OrgUpdated),
        )
        .await
        .unwrap();
    assert_eq!(others, 0);
    let amr = vec!["pwd".to_string(), "otp".to_string()];
    assert!(
        !a.record_second_factor(
            &session.id_hash,
            &amr,
            "mfa",
            now,
            &event(&t.a.id, Action::OrgUpdated)
        )
        .await
        .unwrap()
    );

    let stored = b
        .session_by_hash(&session.id_hash)
        .await
        .unwrap()
        .expect("B's session");
    assert_eq!(
        stored, session,
        "B's session is exactly as it was (not touched, revoked or stepped up)"
    );
}

async fn grants_codes_and_refresh_tokens_of_another_organization_are_invisible(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let app = beta_app(
        &t,
        ClientType::Public,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
    )
    .await
    .app;
    let now = latchkey::time_now();
    let grant = Grant {
        id: GrantId::generate(),
        org_id: t.b.id.clone(),
        app_id: app.id.clone(),
        user_id: Some(t.b_user.id.clone()),
        session_id: None,
        scope: "openid".into(),
        auth_time: Some(now),
        amr: vec!["pwd".into()],
        acr: None,
        session_version: t.b_user.session_version,
        created_at: now,
        expires_at: now + 3600,
        revoked_at: None,
        revoked_reason: None,
    };
    let code = AuthorizationCode {
        code_hash: b"beta-code-hash".to_vec(),
        grant_id: grant.id.clone(),
        redirect_uri: "https://beta.example.com/cb".into(),
        nonce: None,
        code_challenge: None,
        created_at: now,
        expires_at: now + 60,
        consumed_at: None,
    };
    b.create_grant(&grant, Some(&code), &event(&t.b.id, Action::OrgUpdated))
        .await
        .unwrap();
    let refresh = RefreshToken {
        token_hash: b"beta-refresh-hash".to_vec(),
        grant_id: grant.id.clone(),
        created_at: now,
        expires_at: now + 3600,
        used_at: None,
    };

    assert_eq!(a.grant(&grant.id).await.unwrap(), None);
    assert_eq!(a.code_by_hash(&code.code_hash).await.unwrap(), None);
    assert!(
        !a.redeem_code(
            &code.code_hash,
            now,
            None,
            &event(&t.a.id, Action::OrgUpdated)
        )
        .await
        .unwrap(),
        "another organization's code cannot be redeemed"
    );
    assert!(
        !a.revoke_grant(&grant.id, now, "test", &event(&t.a.id, Action::OrgUpdated))
            .await
            .unwrap()
    );
    // Through B's own door: the code is still unredeemed and redeems once, with its refresh token.
    assert_eq!(
        b.code_by_hash(&code.code_hash).await.unwrap(),
        Some(code.clone())
    );
    assert!(
        b.redeem_code(
            &code.code_hash,
            now,
            Some(&refresh),
            &event(&t.b.id, Action::OrgUpdated)
        )
        .await
        .unwrap()
    );
    assert_eq!(
        a.refresh_token_by_hash(&refresh.token_hash).await.unwrap(),
        None
    );
    let newer = RefreshToken {
        token_hash: b"beta-refresh-2".to_vec(),
        ..refresh.clone()
    };
    assert!(
        !a.rotate_refresh_token(
            &refresh.token_hash,
            &newer,
            now,
            &event(&t.a.id, Action::OrgUpdated)
        )
        .await
        .unwrap(),
        "another organization's refresh token cannot be rotated"
    );
    let stored = b.grant(&grant.id).await.unwrap().expect("B's grant");
    assert_eq!(stored.revoked_at, None);
    assert_eq!(
        b.refresh_token_by_hash(&refresh.token_hash).await.unwrap(),
        Some(refresh),
        "B's refresh token is unused"
    );
}

async fn consents_of_another_organization_are_invisible_and_cannot_be_made(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let app = beta_app(&t, ClientType::Public, vec![GrantType::AuthorizationCode])
        .await
        .app;
    let now = latchkey::time_now();
    b.save_consent(
        &t.b_user.id,
        &app.id,
        "openid",
        now,
        &event(&t.b.id, Action::OrgUpdated),
    )
    .await
    .unwrap();
    assert_eq!(a.consent_scope(&t.b_user.id, &app.id).await.unwrap(), None);
    let widened = a
        .save_consent(
            &t.b_user.id,
            &app.id,
            "openid email",
            now,
            &event(&t.a.id, Action::OrgUpdated),
        )
        .await;
    assert!(
        matches!(widened, Err(StoreError::NotFound(_))),
        "{widened:?}"
    );
    assert_eq!(
        b.consent_scope(&t.b_user.id, &app.id)
            .await
            .unwrap()
            .as_deref(),
        Some("openid"),
        "B's consent is unchanged"
    );
}

async fn one_time_tokens_of_another_organization_cannot_be_read_or_spent(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let now = latchkey::time_now();
    let token = OneTimeToken {
        token_hash: b"beta-one-time".to_vec(),
        org_id: t.b.id.clone(),
        user_id: Some(t.b_user.id.clone()),
        purpose: "password_reset".into(),
        data: String::new(),
        attempts: 0,
        created_at: now,
        expires_at: now + 600,
        consumed_at: None,
    };
    b.insert_one_time_token(&token).await.unwrap();
    assert_eq!(
        a.one_time_token(&token.token_hash, &token.purpose)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        a.count_token_attempt(&token.token_hash, &token.purpose, 5, now)
            .await
            .unwrap(),
        None
    );
    assert!(
        !a.consume_one_time_token(&token.token_hash, &token.purpose, now)
            .await
            .unwrap()
    );
    assert!(
        !a.verify_email(
            &token.token_hash,
            &t.b_user.id,
            now,
            &event(&t.a.id, Action::OrgUpdated)
        )
        .await
        .unwrap()
    );
    assert_eq!(
        b.one_time_token(&token.token_hash, &token.purpose)
            .await
            .unwrap(),
        Some(token),
        "B's token is unspent, with no attempt counted"
    );
}

async fn keys_outbox_and_audit_of_another_organization_are_invisible(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let a_keys = a.signing_keys().await.unwrap();
    let b_keys = b.signing_keys().await.unwrap();
    assert!(!a_keys.is_empty() && !b_keys.is_empty());
    assert!(a_keys.iter().all(|k| k.org_id == t.a.id));
    assert!(
        a_keys
            .iter()
            .all(|ka| b_keys.iter().all(|kb| kb.kid != ka.kid))
    );

    let email = OutgoingEmail::new(
        latchkey::time_now(),
        &t.b.id,
        "b@example.com",
        "Beta only",
        "secret link".into(),
    );
    b.enqueue_email(&email).await.unwrap();
    assert!(a.list_outbox(100).await.unwrap().is_empty());
    assert_eq!(a.outbox_entry(&email.id).await.unwrap(), None);
    assert_eq!(
        b.outbox_entry(&email.id).await.unwrap().unwrap().email,
        email
    );

    let a_events = a.audit_events(0, 1000).await.unwrap();
    let b_events = b.audit_events(0, 1000).await.unwrap();
    assert!(!a_events.is_empty() && !b_events.is_empty());
    assert!(a_events.iter().all(|e| e.org_id == t.a.id));
    assert!(b_events.iter().all(|e| e.org_id == t.b.id));
    assert_ne!(a.audit_head().await.unwrap(), b.audit_head().await.unwrap());
}

async fn records_of_another_organization_are_refused_before_anything_is_written(backend: Backend) {
    let Some(t) = two_orgs(backend).await else {
        return;
    };
    let (a, b) = (t.services.db.tenant(&t.a.id), t.services.db.tenant(&t.b.id));
    let before = b.audit_head().await.unwrap();
    // A session of B handed to A's door, and an audit event of B written through A's door.
    let session = session_of(&t.b, &t.b_user, b"beta-session-hash-handed-to-alpha");
    let err = a
        .create_session(&session, &event(&t.a.id, Action::OrgUpdated))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongTenant("session")), "{err:?}");
    let err = a
        .append_audit(&event(&t.b.id, Action::OrgUpdated))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongTenant("audit event")),
        "{err:?}"
    );
    let mut renamed = t.b.clone();
    renamed.name = "Hijacked".into();
    let err = a
        .update_org(&renamed, &event(&t.a.id, Action::OrgUpdated))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongTenant("organization")),
        "{err:?}"
    );

    assert_eq!(b.session_by_hash(&session.id_hash).await.unwrap(), None);
    assert_eq!(
        b.audit_head().await.unwrap(),
        before,
        "nothing joined B's chain"
    );
    let stored = t
        .services
        .db
        .system()
        .org_by_id(&t.b.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "beta");
}
