//! Schema migrations, embedded in the binary. Each backend has its own SQL files with the same numbers.

pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(super) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_email_delivery",
        sql: include_str!("../../migrations/sqlite/0002_email_delivery.sql"),
    },
    Migration {
        version: 3,
        name: "0003_mfa",
        sql: include_str!("../../migrations/sqlite/0003_mfa.sql"),
    },
    Migration {
        version: 4,
        name: "0004_sealed_outbox_keyed_audit",
        sql: include_str!("../../migrations/sqlite/0004_sealed_outbox_keyed_audit.sql"),
    },
    Migration {
        version: 5,
        name: "0005_control_plane",
        sql: include_str!("../../migrations/sqlite/0005_control_plane.sql"),
    },
    Migration {
        version: 6,
        name: "0006_admin_scale",
        sql: include_str!("../../migrations/sqlite/0006_admin_scale.sql"),
    },
];

pub(super) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_email_delivery",
        sql: include_str!("../../migrations/postgres/0002_email_delivery.sql"),
    },
    Migration {
        version: 3,
        name: "0003_mfa",
        sql: include_str!("../../migrations/postgres/0003_mfa.sql"),
    },
    Migration {
        version: 4,
        name: "0004_sealed_outbox_keyed_audit",
        sql: include_str!("../../migrations/postgres/0004_sealed_outbox_keyed_audit.sql"),
    },
    Migration {
        version: 5,
        name: "0005_control_plane",
        sql: include_str!("../../migrations/postgres/0005_control_plane.sql"),
    },
    Migration {
        version: 6,
        name: "0006_admin_scale",
        sql: include_str!("../../migrations/postgres/0006_admin_scale.sql"),
    },
];

pub(super) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS latchkey_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
