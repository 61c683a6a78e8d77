//! Scheduled signing-key rotation: keys older than `key_rotation_days` are rotated, younger ones are not,
//! on both backends.

use latchkey::app::App;
use latchkey::audit::Actor;
use latchkey::kernel::Clock;
use latchkey::keys::{self, KeyState};
use latchkey::orgs::NewOrganization;

use crate::helpers::{Backend, TestDb, test_config_with};

async fn key_count(services: &App, org: &latchkey::orgs::Organization) -> usize {
    services
        .db
        .tenant(&org.id)
        .signing_keys()
        .await
        .unwrap()
        .len()
}

async fn scheduled_rotation_rotates_only_old_keys(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let clock = Clock::adjustable();
    let services = App::open_with_clock(
        test_config_with(&db, &[("LATCHKEY_KEY_ROTATION_DAYS", "30")]),
        clock.clone(),
    )
    .await
    .unwrap();
    let org = latchkey::orgs::create(
        &services,
        &Actor::operator(),
        NewOrganization {
            slug: "sched",
            name: "Sched",
        },
    )
    .await
    .unwrap();
    let before = services.db.tenant(&org.id).signing_keys().await.unwrap();
    let active = before
        .iter()
        .find(|k| k.state == KeyState::Active)
        .unwrap()
        .kid
        .clone();
    let next = before
        .iter()
        .find(|k| k.state == KeyState::Next)
        .unwrap()
        .kid
        .clone();

    // Young keys are left alone.
    keys::rotate_due(&services).await.unwrap();
    assert_eq!(key_count(&services, &org).await, 2);

    // A day short of the schedule: still left alone.
    clock.advance(29 * 86_400);
    keys::rotate_due(&services).await.unwrap();
    assert_eq!(key_count(&services, &org).await, 2);

    // Past the schedule.
    clock.advance(2 * 86_400);
    keys::rotate_due(&services).await.unwrap();
    let after = services.db.tenant(&org.id).signing_keys().await.unwrap();
    let state_of = |kid: &str| after.iter().find(|k| k.kid == kid).map(|k| k.state);
    assert_eq!(
        state_of(&active),
        Some(KeyState::Retired),
        "the old key is retired but still published"
    );
    assert_eq!(
        state_of(&next),
        Some(KeyState::Active),
        "the pre-published next key signs now"
    );
    assert_eq!(
        after.iter().filter(|k| k.state == KeyState::Next).count(),
        1,
        "a new next key is published"
    );
    assert!(
        after
            .iter()
            .find(|k| k.kid == active)
            .unwrap()
            .publish_until
            .unwrap()
            > clock.now()
    );
}

backend_tests! {
    scheduled_rotation_rotates_only_old_keys => sqlite_scheduled_rotation_rotates_only_old_keys, postgres_scheduled_rotation_rotates_only_old_keys;
}
