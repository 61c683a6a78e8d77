//! The storage contract, run unchanged against SQLite and PostgreSQL: every body below becomes a
//! `sqlite_…` and a `postgres_…` test.

use std::collections::BTreeSet;

use latchkey::app::{App, StartupError};
use latchkey::apps::{self, ClientType, GrantType, NewApplication};
use latchkey::audit::{self, Action, Actor, GENESIS_HASH, NewAuditEvent};
use latchkey::error::Error;
use latchkey::keys::{self, KeyState};
use latchkey::orgs::{self, NewOrganization, Organization, Role};
use latchkey::storage::StoreError;
use latchkey::users::{self, CredentialKind, NewUser, User};

use crate::helpers::{Backend, TestDb, open_services, test_config, test_config_with};

/// App on a fresh database. Field order matters: the services drop before the database.
struct Fx {
    services: App,
    db: TestDb,
}

async fn fixture(backend: Backend) -> Option<Fx> {
    let db = TestDb::new(backend).await?;
    let services = open_services(&db).await;
    assert_eq!(services.db.backend(), backend.name());
    Some(Fx { services, db })
}

async fn make_org(services: &App, slug: &str) -> Organization {
    orgs::create(
        services,
        &Actor::operator(),
        NewOrganization {
            slug,
            name: &format!("Org {slug}"),
        },
    )
    .await
    .expect("create organization")
}

fn web_app(name: &str) -> NewApplication {
    NewApplication {
        name: name.into(),
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

fn spa_app(name: &str) -> NewApplication {
    NewApplication {
        name: name.into(),
        client_type: ClientType::Public,
        redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode],
        cors_origins: vec!["http://127.0.0.1:5173".into()],
        first_party: true,
        signing_alg: None,
        require_offline_access: false,
        insecure_allow_no_pkce: false,
    }
}

async fn audit_actions(services: &App, org: &Organization) -> Vec<String> {
    services
        .db
        .tenant(&org.id)
        .audit_events(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// An instance whose clock is behind never stamps an event earlier than the one before it, so a time
/// range is the seq range it covers; pages of a range are exactly the events in it, newest first.
async fn audit_time_never_goes_backwards_and_ranges_page_by_seq(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let clock = latchkey::kernel::Clock::adjustable();
    let s = App::open_with_clock(test_config(&db), clock.clone())
        .await
        .expect("services open");
    let org = make_org(&s, "acme").await;
    let store = s.db.tenant(&org.id);
    let mut stamped = Vec::new();
    for i in 0..30 {
        // Every tenth event comes from an instance 100 seconds behind.
        clock.advance(if i % 10 == 9 { -100 } else { 10 });
        let event = NewAuditEvent::new(&org.id, &Actor::system(), Action::UserUpdated)
            .target("user", &format!("u{i}"));
        let event = store.append_audit(&event).await.unwrap();
        clock.advance(if i % 10 == 9 { 100 } else { 0 });
        stamped.push((event.seq, event.at));
    }
    assert!(
        stamped.windows(2).all(|w| w[0].1 <= w[1].1),
        "time went backwards: {stamped:?}"
    );
    let (since, until) = (stamped[5].1, stamped[22].1);
    let expected: Vec<i64> = stamped
        .iter()
        .rev()
        .filter(|(_, at)| *at >= since && *at < until)
        .map(|(seq, _)| *seq)
        .collect();
    assert!(expected.len() > 10);
    let filter = latchkey::model::audit::AuditFilter {
        since: Some(since),
        until: Some(until),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.audit_page(&filter, cursor, true, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|e| e.seq);
        seen.extend(page.iter().map(|e| e.seq));
    }
    assert_eq!(seen, expected);
    // A range with nothing in it, before or after the log, is empty.
    for (since, until) in [(0, stamped[0].1 - 1000), (stamped[29].1 + 1, i64::MAX)] {
        let filter = latchkey::model::audit::AuditFilter {
            since: Some(since),
            until: Some(until),
            ..Default::default()
        };
        assert!(
            store
                .audit_page(&filter, None, true, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

backend_tests! {
    audit_time_never_goes_backwards_and_ranges_page_by_seq => sqlite_audit_time_never_goes_backwards_and_ranges_page_by_seq, postgres_audit_time_never_goes_backwards_and_ranges_page_by_seq;
    organizations_are_created_and_found_by_slug_id_and_list => sqlite_organizations_are_created_and_found_by_slug_id_and_list, postgres_organizations_are_created_and_found_by_slug_id_and_list;
    duplicate_org_slug_is_a_conflict_and_changes_nothing => sqlite_duplicate_org_slug_is_a_conflict_and_changes_nothing, postgres_duplicate_org_slug_is_a_conflict_and_changes_nothing;
    invalid_org_slug_is_refused_before_storage => sqlite_invalid_org_slug_is_refused_before_storage, postgres_invalid_org_slug_is_refused_before_storage;
    application_secret_is_stored_only_as_a_keyed_hash => sqlite_application_secret_is_stored_only_as_a_keyed_hash, postgres_application_secret_is_stored_only_as_a_keyed_hash;
    public_application_has_no_secret_and_keeps_its_settings => sqlite_public_application_has_no_secret_and_keeps_its_settings, postgres_public_application_has_no_secret_and_keeps_its_settings;
    duplicate_user_email_is_a_conflict_regardless_of_case => sqlite_duplicate_user_email_is_a_conflict_regardless_of_case, postgres_duplicate_user_email_is_a_conflict_regardless_of_case;
    database_enforces_unique_email_per_org_even_without_the_precheck => sqlite_database_enforces_unique_email_per_org_even_without_the_precheck, postgres_database_enforces_unique_email_per_org_even_without_the_precheck;
    password_is_stored_as_a_slow_hash_not_the_password => sqlite_password_is_stored_as_a_slow_hash_not_the_password, postgres_password_is_stored_as_a_slow_hash_not_the_password;
    bump_session_version_increments_and_is_audited => sqlite_bump_session_version_increments_and_is_audited, postgres_bump_session_version_increments_and_is_audited;
    members_are_listed_with_their_role => sqlite_members_are_listed_with_their_role, postgres_members_are_listed_with_their_role;
    new_org_has_an_active_and_a_next_rs256_key_sealed_at_rest => sqlite_new_org_has_an_active_and_a_next_rs256_key_sealed_at_rest, postgres_new_org_has_an_active_and_a_next_rs256_key_sealed_at_rest;
    key_rotation_retires_active_promotes_next_and_publishes_a_new_next => sqlite_key_rotation_retires_active_promotes_next_and_publishes_a_new_next, postgres_key_rotation_retires_active_promotes_next_and_publishes_a_new_next;
    every_mutation_appends_an_audit_event_and_the_chain_verifies => sqlite_every_mutation_appends_an_audit_event_and_the_chain_verifies, postgres_every_mutation_appends_an_audit_event_and_the_chain_verifies;
    concurrent_audit_appends_keep_one_unbroken_chain => sqlite_concurrent_audit_appends_keep_one_unbroken_chain, postgres_concurrent_audit_appends_keep_one_unbroken_chain;
    audit_chains_are_per_organization => sqlite_audit_chains_are_per_organization, postgres_audit_chains_are_per_organization;
    audit_verify_detects_a_tampered_row => sqlite_audit_verify_detects_a_tampered_row, postgres_audit_verify_detects_a_tampered_row;
    audit_events_refuse_update_and_delete => sqlite_audit_events_refuse_update_and_delete, postgres_audit_events_refuse_update_and_delete;
    migrations_are_idempotent_and_reopening_keeps_data => sqlite_migrations_are_idempotent_and_reopening_keeps_data, postgres_migrations_are_idempotent_and_reopening_keeps_data;
    a_different_master_key_is_refused_naming_the_setting => sqlite_a_different_master_key_is_refused_naming_the_setting, postgres_a_different_master_key_is_refused_naming_the_setting;
}

async fn organizations_are_created_and_found_by_slug_id_and_list(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    assert!(s.db.system().list_orgs().await.unwrap().is_empty());
    let acme = make_org(s, "acme").await;
    let beta = make_org(s, "beta-2").await;
    assert!(acme.id.starts_with("org_"), "id {}", acme.id);
    assert_ne!(acme.id, beta.id);
    assert_eq!(acme.name, "Org acme");

    assert_eq!(
        s.db.system().org_by_slug("acme").await.unwrap().as_ref(),
        Some(&acme)
    );
    assert_eq!(
        s.db.system().org_by_id(&acme.id).await.unwrap().as_ref(),
        Some(&acme)
    );
    assert_eq!(
        s.db.system().org_by_slug("beta-2").await.unwrap().as_ref(),
        Some(&beta)
    );
    assert_eq!(s.db.system().org_by_slug("nope").await.unwrap(), None);
    assert_eq!(
        s.db.system()
            .org_by_id(&"org_missing".into())
            .await
            .unwrap(),
        None
    );
    assert_eq!(orgs::find(s, "acme").await.unwrap(), acme);
    assert!(matches!(
        orgs::find(s, "nope").await,
        Err(Error::NotFound(_))
    ));

    let list = s.db.system().list_orgs().await.unwrap();
    assert_eq!(
        list,
        vec![acme.clone(), beta],
        "listed by slug, settings round-tripped"
    );
    assert_eq!(
        s.config.issuer_for("acme"),
        format!("{}/o/acme", s.config.public_base())
    );
}

async fn duplicate_org_slug_is_a_conflict_and_changes_nothing(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let acme = make_org(s, "acme").await;
    let keys_before = s.db.tenant(&acme.id).signing_keys().await.unwrap();
    let err = orgs::create(
        s,
        &Actor::operator(),
        NewOrganization {
            slug: "acme",
            name: "Another",
        },
    )
    .await
    .unwrap_err();
    match &err {
        Error::Conflict(message) => assert!(
            message.contains("acme"),
            "conflict message names the slug: {message}"
        ),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let list = s.db.system().list_orgs().await.unwrap();
    assert_eq!(list, vec![acme.clone()]);
    assert_eq!(
        s.db.tenant(&acme.id).signing_keys().await.unwrap(),
        keys_before
    );
    // The failed attempt's keys and audit event were rolled back with it.
    assert_eq!(
        fx.db.scalar_i64("SELECT COUNT(*) FROM signing_keys").await,
        2
    );
    assert_eq!(
        fx.db.scalar_i64("SELECT COUNT(*) FROM audit_events").await,
        1
    );
}

async fn invalid_org_slug_is_refused_before_storage(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    for bad in [
        "A",
        "Acme",
        "-acme",
        "acme-",
        "ac me",
        "acmé",
        &"a".repeat(41),
    ] {
        let err = orgs::create(
            s,
            &Actor::operator(),
            NewOrganization {
                slug: bad,
                name: "X",
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "slug"),
            "{bad:?}: {err:?}"
        );
    }
    let err = orgs::create(
        s,
        &Actor::operator(),
        NewOrganization {
            slug: "fine",
            name: "   ",
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "name"),
        "{err:?}"
    );
    assert!(s.db.system().list_orgs().await.unwrap().is_empty());
    assert_eq!(
        fx.db.scalar_i64("SELECT COUNT(*) FROM audit_events").await,
        0
    );
}

async fn application_secret_is_stored_only_as_a_keyed_hash(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let created = apps::create(s, &Actor::operator(), &org, web_app("Web"))
        .await
        .unwrap();
    let secret = created
        .client_secret
        .clone()
        .expect("a confidential client gets a secret");
    assert_eq!(secret.len(), 43, "256-bit base64url secret");
    assert_eq!(created.app.client_id.len(), 32);

    let stored =
        s.db.tenant(&org.id)
            .app_by_client_id(&created.app.client_id)
            .await
            .unwrap()
            .expect("stored");
    assert_eq!(stored, created.app);
    let hash = stored.client_secret_hash.clone().expect("hash stored");
    assert_ne!(hash, secret.as_bytes(), "the secret itself is not stored");
    assert!(!String::from_utf8_lossy(&hash).contains(&secret));
    assert!(s.secrets.token_matches(&secret, &hash));
    assert!(!s.secrets.token_matches("not-the-secret", &hash));
    assert_eq!(
        stored.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(
        stored.redirect_uris,
        vec!["https://app.example.com/callback".to_string()]
    );
    assert_eq!(stored.settings.signing_alg, "RS256");

    let second = apps::create(s, &Actor::operator(), &org, web_app("Second"))
        .await
        .unwrap();
    assert_ne!(second.app.client_id, created.app.client_id);
    assert_ne!(second.client_secret, created.client_secret);
    let listed: Vec<String> =
        s.db.tenant(&org.id)
            .list_apps()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.client_id.into_string())
            .collect();
    assert_eq!(
        listed.iter().collect::<BTreeSet<_>>(),
        [
            &created.app.client_id.to_string(),
            &second.app.client_id.to_string()
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        s.db.tenant(&org.id).app_by_client_id("0000").await.unwrap(),
        None
    );
    let other = make_org(s, "other").await;
    assert!(
        s.db.tenant(&other.id).list_apps().await.unwrap().is_empty(),
        "apps are listed per organization"
    );

    // The secret never reaches the audit log.
    let events = s.db.tenant(&org.id).audit_events(0, 100).await.unwrap();
    let app_event = events
        .iter()
        .find(|e| e.action == "app.created")
        .expect("app.created event");
    assert_eq!(
        app_event.target_id.as_deref(),
        Some(created.app.id.as_str())
    );
    for e in &events {
        let text = format!("{:?}{:?}", e.before_state, e.after_state);
        assert!(
            !text.contains(&secret),
            "secret leaked into audit event {}",
            e.seq
        );
    }
}

async fn public_application_has_no_secret_and_keeps_its_settings(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let created = apps::create(s, &Actor::operator(), &org, spa_app("SPA"))
        .await
        .unwrap();
    assert_eq!(created.client_secret, None);
    let stored =
        s.db.tenant(&org.id)
            .app_by_client_id(&created.app.client_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.client_type, ClientType::Public);
    assert_eq!(stored.client_secret_hash, None);
    assert!(stored.first_party);
    assert_eq!(
        stored.cors_origins,
        vec!["http://127.0.0.1:5173".to_string()]
    );

    let mut bad = spa_app("Bad");
    bad.grant_types = vec![GrantType::ClientCredentials];
    bad.redirect_uris.clear();
    assert!(matches!(
        apps::create(s, &Actor::operator(), &org, bad).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(s.db.tenant(&org.id).list_apps().await.unwrap().len(), 1);
}

async fn duplicate_user_email_is_a_conflict_regardless_of_case(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let new = |email| NewUser {
        email,
        password: None,
        name: Some("Ann"),
        verified: true,
        role: None,
    };
    let ann = users::create(s, &Actor::operator(), &org, new("Ann@Example.com"))
        .await
        .unwrap();
    assert_eq!(ann.email, "Ann@Example.com");
    assert_eq!(ann.email_normalized, "ann@example.com");
    assert_eq!(ann.session_version, 1);

    let err = users::create(s, &Actor::operator(), &org, new("  ann@EXAMPLE.COM "))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(
        s.db.tenant(&org.id).list_users().await.unwrap(),
        vec![ann.clone()]
    );
    assert_eq!(
        s.db.tenant(&org.id)
            .user_by_email("ann@example.com")
            .await
            .unwrap(),
        Some(ann.clone())
    );
    assert_eq!(
        s.db.tenant(&org.id).user_by_id(&ann.id).await.unwrap(),
        Some(ann.clone())
    );

    // The same address in another organization is another user.
    let other = make_org(s, "other").await;
    let ann2 = users::create(s, &Actor::operator(), &other, new("ann@example.com"))
        .await
        .unwrap();
    assert_ne!(ann2.id, ann.id);
    assert_eq!(
        s.db.tenant(&org.id)
            .user_by_email("ann@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        ann.id
    );
}

async fn database_enforces_unique_email_per_org_even_without_the_precheck(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let ann = users::create(
        s,
        &Actor::operator(),
        &org,
        NewUser {
            email: "ann@example.com",
            password: None,
            name: None,
            verified: false,
            role: None,
        },
    )
    .await
    .unwrap();
    // Two concurrent sign-ups can both pass the application's check; the unique index must catch the second.
    let racer = User {
        id: "usr_racer".into(),
        email: "ANN@example.com".into(),
        ..ann.clone()
    };
    let audit = NewAuditEvent::new(&org.id, &Actor::system(), Action::UserCreated)
        .target("user", &racer.id);
    let err =
        s.db.tenant(&org.id)
            .create_user(&racer, &[], Some(Role::Member), &audit)
            .await
            .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        s.db.tenant(&org.id)
            .user_by_id(&"usr_racer".into())
            .await
            .unwrap(),
        None
    );
    assert!(
        s.db.tenant(&org.id)
            .list_members()
            .await
            .unwrap()
            .is_empty(),
        "the membership was rolled back too"
    );
    assert_eq!(
        audit_actions(s, &org).await,
        vec!["org.created", "user.created"],
        "no audit event for the failed insert"
    );
}

async fn password_is_stored_as_a_slow_hash_not_the_password(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let password = "correct horse battery staple";
    let user = users::create(
        s,
        &Actor::operator(),
        &org,
        NewUser {
            email: "bob@example.com",
            password: Some(password),
            name: None,
            verified: false,
            role: None,
        },
    )
    .await
    .unwrap();
    let creds =
        s.db.tenant(&org.id)
            .credentials(&user.id, CredentialKind::Password)
            .await
            .unwrap();
    assert_eq!(creds.len(), 1);
    let stored = String::from_utf8(creds[0].secret.clone()).expect("hash is text");
    assert_ne!(stored, password);
    assert!(!stored.contains(password));
    assert!(
        stored.starts_with("bcrypt-hmac$$2"),
        "scheme prefix then bcrypt: {stored}"
    );
    assert!(
        stored.contains("$10$"),
        "the configured cost (10) is used: {stored}"
    );
    assert!(s.passwords.verify(password, &stored).await.unwrap().ok);
    assert!(
        !s.passwords
            .verify("correct horse battery stapl", &stored)
            .await
            .unwrap()
            .ok
    );
    assert!(
        s.db.tenant(&org.id)
            .credentials(&user.id, CredentialKind::Totp)
            .await
            .unwrap()
            .is_empty()
    );

    let events = s.db.tenant(&org.id).audit_events(0, 100).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| !format!("{:?}", e.after_state).contains(password)),
        "password leaked into audit"
    );

    // Too short a password is refused and stores nothing.
    let err = users::create(
        s,
        &Actor::operator(),
        &org,
        NewUser {
            email: "carol@example.com",
            password: Some("short"),
            name: None,
            verified: false,
            role: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "password"),
        "{err:?}"
    );
    assert_eq!(
        s.db.tenant(&org.id)
            .user_by_email("carol@example.com")
            .await
            .unwrap(),
        None
    );

    // Without a password, no credential.
    let dan = users::create(
        s,
        &Actor::operator(),
        &org,
        NewUser {
            email: "dan@example.com",
            password: None,
            name: None,
            verified: false,
            role: None,
        },
    )
    .await
    .unwrap();
    assert!(
        s.db.tenant(&org.id)
            .credentials(&dan.id, CredentialKind::Password)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn bump_session_version_increments_and_is_audited(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let user = users::create(
        s,
        &Actor::operator(),
        &org,
        NewUser {
            email: "eve@example.com",
            password: None,
            name: None,
            verified: false,
            role: None,
        },
    )
    .await
    .unwrap();
    let event = || {
        NewAuditEvent::new(&org.id, &Actor::system(), Action::UserSessionsRevoked)
            .target("user", &user.id)
    };
    assert_eq!(
        s.db.tenant(&org.id)
            .bump_session_version(&user.id, &event())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.db.tenant(&org.id)
            .bump_session_version(&user.id, &event())
            .await
            .unwrap(),
        3
    );
    let reloaded =
        s.db.tenant(&org.id)
            .user_by_id(&user.id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(reloaded.session_version, 3);
    assert!(reloaded.updated_at >= user.updated_at);

    let missing =
        s.db.tenant(&org.id)
            .bump_session_version(&"usr_missing".into(), &event())
            .await
            .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
    assert_eq!(
        audit_actions(s, &org).await,
        vec![
            "org.created",
            "user.created",
            "user.sessions_revoked",
            "user.sessions_revoked"
        ],
        "a failed bump appends nothing"
    );
}

async fn members_are_listed_with_their_role(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let mk = |email, role| NewUser {
        email,
        password: None,
        name: None,
        verified: true,
        role,
    };
    let zed = users::create(
        s,
        &Actor::operator(),
        &org,
        mk("zed@example.com", Some(Role::Owner)),
    )
    .await
    .unwrap();
    let amy = users::create(
        s,
        &Actor::operator(),
        &org,
        mk("Amy@example.com", Some(Role::Admin)),
    )
    .await
    .unwrap();
    let _plain = users::create(s, &Actor::operator(), &org, mk("plain@example.com", None))
        .await
        .unwrap();
    let members = s.db.tenant(&org.id).list_members().await.unwrap();
    let got: Vec<(String, String, Role)> = members
        .into_iter()
        .map(|m| (m.user_id.into_string(), m.email, m.role))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                amy.id.into_string(),
                "Amy@example.com".to_string(),
                Role::Admin
            ),
            (
                zed.id.into_string(),
                "zed@example.com".to_string(),
                Role::Owner
            )
        ],
        "only users given a role are members, ordered by email"
    );
    let other = make_org(s, "other").await;
    assert!(
        s.db.tenant(&other.id)
            .list_members()
            .await
            .unwrap()
            .is_empty()
    );
}

fn parse_jwk(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(text)
        .expect("public_jwk is JSON")
        .as_object()
        .cloned()
        .expect("an object")
}

async fn new_org_has_an_active_and_a_next_rs256_key_sealed_at_rest(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let keys = s.db.tenant(&org.id).signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let active: Vec<_> = keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .collect();
    let next: Vec<_> = keys.iter().filter(|k| k.state == KeyState::Next).collect();
    assert_eq!((active.len(), next.len()), (1, 1));
    assert!(active[0].activated_at.is_some());
    assert_eq!(next[0].activated_at, None);
    assert_ne!(active[0].kid, next[0].kid);
    for key in &keys {
        assert_eq!(key.alg, "RS256");
        assert_eq!(key.org_id, org.id);
        assert_eq!(key.retired_at, None);
        let der = s
            .secrets
            .open(&key.kid, &key.private_key_sealed)
            .expect("sealed under this master key and kid");
        assert_eq!(der[0], 0x30, "a DER SEQUENCE");
        assert!(
            der.len() > 1000,
            "an RSA-2048 private key, {} bytes",
            der.len()
        );
        assert!(
            !key.private_key_sealed.windows(64).any(|w| w == &der[..64]),
            "stored sealed, not in plain"
        );
        assert!(
            s.secrets
                .open("another-kid", &key.private_key_sealed)
                .is_err(),
            "the kid is bound as associated data"
        );

        let jwk = parse_jwk(&key.public_jwk);
        assert_eq!(jwk["kid"], key.kid.as_str());
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kty"], "RSA");
        assert!(jwk.contains_key("n") && jwk.contains_key("e"));
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                !jwk.contains_key(private),
                "public JWK carries private member {private:?}"
            );
        }
    }
}

async fn key_rotation_retires_active_promotes_next_and_publishes_a_new_next(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let before = s.db.tenant(&org.id).signing_keys().await.unwrap();
    let old_active = before
        .iter()
        .find(|k| k.state == KeyState::Active)
        .unwrap()
        .clone();
    let old_next = before
        .iter()
        .find(|k| k.state == KeyState::Next)
        .unwrap()
        .clone();

    let started = latchkey::time_now();
    let rotations = keys::rotate(s, &Actor::operator(), &org).await.unwrap();
    assert_eq!(rotations.len(), 1);
    let r = &rotations[0];
    assert_eq!(r.alg, "RS256");
    assert_eq!(r.activated, old_next.kid);
    assert_eq!(r.retired.as_deref(), Some(old_active.kid.as_str()));

    let after = s.db.tenant(&org.id).signing_keys().await.unwrap();
    assert_eq!(after.len(), 3);
    let find = |kid: &str| {
        after
            .iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("key {kid} missing"))
    };
    let retired = find(&old_active.kid);
    assert_eq!(retired.state, KeyState::Retired);
    let retired_at = retired.retired_at.expect("retired_at set");
    assert!(retired_at >= started);
    let publish_until = retired.publish_until.expect("publish_until set");
    assert_eq!(
        publish_until - retired_at,
        keys::retired_publish_secs(s),
        "published for the longest token life + JWKS cache"
    );
    let promoted = find(&old_next.kid);
    assert_eq!(promoted.state, KeyState::Active);
    assert!(promoted.activated_at.unwrap() >= started);
    let new_next = find(&r.next);
    assert_eq!(new_next.state, KeyState::Next);
    assert!(
        s.secrets
            .open(&new_next.kid, &new_next.private_key_sealed)
            .is_ok()
    );
    assert_eq!(
        after.iter().filter(|k| k.state == KeyState::Active).count(),
        1
    );
    assert_eq!(
        after.iter().filter(|k| k.state == KeyState::Next).count(),
        1
    );

    // A second rotation moves along the same way and keeps the still-published retired key.
    let second = keys::rotate(s, &Actor::operator(), &org).await.unwrap();
    assert_eq!(second[0].activated, r.next);
    assert_eq!(second[0].retired.as_deref(), Some(old_next.kid.as_str()));
    let after2 = s.db.tenant(&org.id).signing_keys().await.unwrap();
    assert_eq!(
        after2
            .iter()
            .filter(|k| k.state == KeyState::Retired)
            .count(),
        2
    );
    assert_eq!(
        after2
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count(),
        1
    );

    let actions = audit_actions(s, &org).await;
    assert_eq!(actions, vec!["org.created", "keys.rotated", "keys.rotated"]);
}

async fn every_mutation_appends_an_audit_event_and_the_chain_verifies(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let app = apps::create(s, &Actor::operator(), &org, web_app("Web"))
        .await
        .unwrap();
    let user = users::create(
        s,
        &Actor::operator(),
        &org,
        NewUser {
            email: "fay@example.com",
            password: Some("a long enough password"),
            name: None,
            verified: true,
            role: Some(Role::Admin),
        },
    )
    .await
    .unwrap();
    s.db.tenant(&org.id)
        .bump_session_version(
            &user.id,
            &NewAuditEvent::new(&org.id, &Actor::system(), Action::UserSessionsRevoked)
                .target("user", &user.id),
        )
        .await
        .unwrap();
    keys::rotate(s, &Actor::operator(), &org).await.unwrap();

    let events = s.db.tenant(&org.id).audit_events(0, 100).await.unwrap();
    let summary: Vec<(i64, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e.seq, e.action.as_str(), e.target_id.as_deref()))
        .collect();
    let rotated_kid = events[4].target_id.clone().unwrap();
    assert_eq!(
        summary,
        vec![
            (1, "org.created", Some(org.id.as_str())),
            (2, "app.created", Some(app.app.id.as_str())),
            (3, "user.created", Some(user.id.as_str())),
            (4, "user.sessions_revoked", Some(user.id.as_str())),
            (5, "keys.rotated", Some(rotated_kid.as_str())),
        ]
    );
    assert_eq!(events[0].prev_hash, GENESIS_HASH);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "event {} links to {}",
            pair[1].seq, pair[0].seq
        );
    }
    for e in &events {
        assert_eq!(e.compute_hash(&s.audit_keys).as_ref(), Some(&e.hash));
        assert_eq!(e.org_id, org.id);
    }
    assert_eq!(events[0].actor_type, "operator");
    assert_eq!(events[3].actor_type, "system");
    let user_after: serde_json::Value =
        serde_json::from_str(events[2].after_state.as_deref().unwrap()).unwrap();
    assert_eq!(user_after["email"], "fay@example.com");
    assert_eq!(user_after["role"], "admin");

    let head = s.db.tenant(&org.id).audit_head().await.unwrap().unwrap();
    assert_eq!(head, (5, events[4].hash.clone()));
    let report = audit::service::verify(s, &org).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, 5);
    assert_eq!(report.head_hash, events[4].hash);
    assert_eq!(report.broken_at, None);

    // Paging: after_seq and limit.
    let page = s.db.tenant(&org.id).audit_events(2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
}

async fn concurrent_audit_appends_keep_one_unbroken_chain(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    const N: i64 = 20;
    let mut tasks = Vec::new();
    for i in 0..N {
        let store = s.db.clone();
        let event = NewAuditEvent::new(&org.id, &Actor::system(), Action::UserUpdated)
            .target("user", &format!("parallel-{i}"));
        tasks.push(tokio::spawn(async move {
            store.tenant(&event.org_id).append_audit(&event).await
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(
            t.await
                .unwrap()
                .expect("append succeeds under concurrency")
                .seq,
        );
    }
    seqs.sort();
    assert_eq!(
        seqs,
        (2..=N + 1).collect::<Vec<_>>(),
        "each append got its own seq"
    );

    let events = s.db.tenant(&org.id).audit_events(0, 1000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=N + 1).collect::<Vec<_>>()
    );
    let targets: BTreeSet<&str> = events
        .iter()
        .skip(1)
        .filter_map(|e| e.target_id.as_deref())
        .collect();
    assert_eq!(targets.len(), N as usize, "every event is present once");
    let report = audit::service::verify(s, &org).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, N + 1);
    assert_eq!(
        s.db.tenant(&org.id).audit_head().await.unwrap().unwrap(),
        (N + 1, events.last().unwrap().hash.clone())
    );
}

async fn audit_chains_are_per_organization(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let a = make_org(s, "alpha").await;
    let b = make_org(s, "bravo").await;
    apps::create(s, &Actor::operator(), &a, web_app("A"))
        .await
        .unwrap();
    let a_events = s.db.tenant(&a.id).audit_events(0, 100).await.unwrap();
    let b_events = s.db.tenant(&b.id).audit_events(0, 100).await.unwrap();
    assert_eq!(
        a_events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(b_events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
    assert_eq!(b_events[0].prev_hash, GENESIS_HASH);
    assert!(audit::service::verify(s, &a).await.unwrap().ok);
    assert!(audit::service::verify(s, &b).await.unwrap().ok);
    assert_eq!(
        s.db.tenant(&"org_without_events".into())
            .audit_head()
            .await
            .unwrap(),
        None
    );
}

/// SQL that switches off the append-only protection (as an attacker with database access could).
fn disable_update_protection(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "DROP TRIGGER audit_events_no_update",
        Backend::Postgres => "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update",
    }
}

async fn audit_verify_detects_a_tampered_row(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let untouched = make_org(s, "untouched").await;
    apps::create(s, &Actor::operator(), &org, web_app("Web"))
        .await
        .unwrap();
    users::create(
        s,
        &Actor::operator(),
        &org,
        NewUser {
            email: "gil@example.com",
            password: None,
            name: None,
            verified: false,
            role: None,
        },
    )
    .await
    .unwrap();
    assert!(audit::service::verify(s, &org).await.unwrap().ok);

    fx.db
        .exec(disable_update_protection(backend))
        .await
        .expect("disable the trigger");
    let changed = fx
        .db
        .exec(&format!("UPDATE audit_events SET action = 'app.nothing_happened' WHERE org_id = '{}' AND seq = 2", org.id))
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let report = audit::service::verify(s, &org).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.broken_at, Some(2), "{report:?}");
    assert!(
        report.reason.as_deref().unwrap().contains("modified"),
        "{report:?}"
    );
    assert!(
        audit::service::verify(s, &untouched).await.unwrap().ok,
        "other organizations' chains are unaffected"
    );
}

async fn audit_events_refuse_update_and_delete(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let update = fx
        .db
        .exec(&format!(
            "UPDATE audit_events SET action = 'forged' WHERE org_id = '{}'",
            org.id
        ))
        .await;
    let err = update.expect_err("UPDATE on audit_events must fail");
    assert!(err.to_string().contains("append-only"), "{err}");
    let delete = fx
        .db
        .exec(&format!(
            "DELETE FROM audit_events WHERE org_id = '{}'",
            org.id
        ))
        .await;
    let err = delete.expect_err("DELETE on audit_events must fail");
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(audit_actions(s, &org).await, vec!["org.created"]);
    assert!(audit::service::verify(s, &org).await.unwrap().ok);
}

/// How many migrations the schema has (one file per migration, the same numbers for both backends).
fn migration_count() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("migrations/sqlite")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count() as i64
}

async fn migrations_are_idempotent_and_reopening_keeps_data(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let org = make_org(&fx.services, "acme").await;
    assert_eq!(
        fx.services.db.migrate().await.unwrap(),
        Vec::<String>::new(),
        "nothing left to apply"
    );
    assert_eq!(
        fx.services.db.migrate().await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        fx.db
            .scalar_i64("SELECT COUNT(*) FROM latchkey_migrations")
            .await,
        migration_count()
    );

    // A second instance on the same database (same master key) migrates nothing and sees the data.
    let again = App::open(test_config(&fx.db)).await.expect("reopen");
    assert_eq!(
        again.db.system().org_by_slug("acme").await.unwrap(),
        Some(org.clone())
    );
    let keys = again.db.tenant(&org.id).signing_keys().await.unwrap();
    assert!(
        keys.iter()
            .all(|k| again.secrets.open(&k.kid, &k.private_key_sealed).is_ok())
    );
    assert!(audit::service::verify(&again, &org).await.unwrap().ok);
    again.db.close().await;
    assert_eq!(
        fx.db
            .scalar_i64("SELECT COUNT(*) FROM latchkey_migrations")
            .await,
        migration_count()
    );
}

async fn a_different_master_key_is_refused_naming_the_setting(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    make_org(&fx.services, "acme").await;
    let other_key = crate::helpers::fresh_master_key();
    let result = App::open(test_config_with(
        &fx.db,
        &[("LATCHKEY_MASTER_KEY", &other_key)],
    ))
    .await;
    match result {
        Err(StartupError::Setting { setting, message }) => {
            assert_eq!(setting, "LATCHKEY_MASTER_KEY");
            assert!(message.contains("master key"), "{message}");
        }
        Ok(_) => panic!("a different master key must be refused"),
    }
}

/// PostgreSQL only: each test's schema is its own, and the guard drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_test_schemas_are_isolated_and_dropped() {
    let Some(a) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let b = TestDb::new(Backend::Postgres).await.unwrap();
    assert_ne!(a.schema_name(), b.schema_name());
    let sa = open_services(&a).await;
    let sb = open_services(&b).await;
    make_org(&sa, "same-slug").await;
    make_org(&sb, "same-slug").await; // No conflict: another schema.
    assert_eq!(sa.db.system().list_orgs().await.unwrap().len(), 1);
    let tables = a
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}' AND table_name = 'organizations'",
            a.schema_name().unwrap()
        ))
        .await;
    assert_eq!(tables, 1, "tables were created in the test schema");
    let public_tables = a
        .scalar_i64("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'organizations'")
        .await;
    assert_eq!(public_tables, 0, "nothing leaked into public");

    sa.db.close().await;
    sb.db.close().await;
    let name = a.schema_name().unwrap().to_string();
    let admin = a.schema.as_ref().unwrap().admin_url.clone();
    drop(a);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(left, 0, "schema {name} was dropped");
}

#[tokio::test]

async fn user_created_audit_event_records_whether_a_password_was_set() {
    let fx = fixture(Backend::Sqlite).await.unwrap();
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    let with = NewUser {
        email: "pw@example.com",
        password: Some("a long enough password"),
        name: None,
        verified: false,
        role: None,
    };
    let without = NewUser {
        email: "nopw@example.com",
        password: None,
        name: None,
        verified: false,
        role: None,
    };
    users::create(s, &Actor::operator(), &org, with)
        .await
        .unwrap();
    users::create(s, &Actor::operator(), &org, without)
        .await
        .unwrap();
    let events = s.db.tenant(&org.id).audit_events(0, 100).await.unwrap();
    let after = |i: usize| -> serde_json::Value {
        serde_json::from_str(events[i].after_state.as_deref().unwrap()).unwrap()
    };
    assert_eq!(after(1)["has_password"], true);
    assert_eq!(after(2)["has_password"], false);
}

#[tokio::test]

async fn a_broken_audit_report_counts_the_events_verified_before_the_break() {
    let fx = fixture(Backend::Sqlite).await.unwrap();
    let s = &fx.services;
    let org = make_org(s, "acme").await;
    for i in 0..3 {
        s.db.tenant(&org.id)
            .append_audit(
                &NewAuditEvent::new(&org.id, &Actor::system(), Action::UserUpdated)
                    .target("user", &format!("user-{i}")),
            )
            .await
            .unwrap();
    }
    fx.db
        .exec("DROP TRIGGER audit_events_no_update")
        .await
        .unwrap();
    fx.db
        .exec(&format!(
            "UPDATE audit_events SET action = 'forged' WHERE org_id = '{}' AND seq = 3",
            org.id
        ))
        .await
        .unwrap();
    let report = audit::service::verify(s, &org).await.unwrap();
    assert_eq!(report.broken_at, Some(3));
    assert_eq!(
        report.events, 2,
        "events 1 and 2 verified before the break at 3: {report:?}"
    );
}
