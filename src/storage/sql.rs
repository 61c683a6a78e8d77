//! The queries behind both backends, written once.
//!
//! `impl_store!` expands to `impl Store for …` for a concrete sqlx database. The SQL uses only what SQLite
//! and PostgreSQL share (`$n` placeholders, `RETURNING`, `ON CONFLICT`), and every column type maps to the
//! same Rust type on both (`i64`, `bool`, `String`, `Vec<u8>`; JSON as text). Each backend provides
//! `write_pool()`/`read_pool()` and the backend-specific `*_impl` methods.

pub(super) const ORG_COLUMNS: &str = "id, slug, name, settings, created_at, updated_at";
pub(super) const APP_COLUMNS: &str = "id, org_id, client_id, name, client_type, client_secret_hash, redirect_uris, \
     post_logout_redirect_uris, grant_types, cors_origins, first_party, settings, created_at, updated_at";
pub(super) const USER_COLUMNS: &str = "id, org_id, email, email_normalized, email_verified, name, session_version, disabled, created_at, updated_at";
pub(super) const CREDENTIAL_COLUMNS: &str =
    "id, user_id, kind, name, secret, data, created_at, last_used_at";
pub(super) const KEY_COLUMNS: &str = "kid, org_id, alg, private_key, public_jwk, state, created_at, activated_at, retired_at, publish_until";
pub(super) const SESSION_COLUMNS: &str = "id_hash, org_id, user_id, public_id, auth_time, amr, acr, ip, user_agent, \
     session_version, created_at, last_seen_at, expires_at, revoked_at, mfa_at";
pub(super) const GRANT_COLUMNS: &str = "id, org_id, app_id, user_id, session_id, scope, auth_time, amr, acr, \
     session_version, created_at, expires_at, revoked_at, revoked_reason";
pub(super) const CODE_COLUMNS: &str = "code_hash, family_id, redirect_uri, nonce, code_challenge, created_at, expires_at, consumed_at";
pub(super) const REFRESH_COLUMNS: &str = "token_hash, family_id, created_at, expires_at, used_at";
pub(super) const ONE_TIME_COLUMNS: &str =
    "token_hash, org_id, user_id, purpose, data, attempts, created_at, expires_at, consumed_at";
pub(super) const OUTBOX_COLUMNS: &str = "id, org_id, recipient, subject, body_text, body_sealed, created_at, sent_at, attempts, \
     last_error, next_attempt_at, failed_at";
pub(super) const AUDIT_COLUMNS: &str = "org_id, seq, at, actor_type, actor_id, actor_role, ip, user_agent, action, \
     target_type, target_id, before_state, after_state, prev_hash, hash, chain_version";

macro_rules! impl_store {
    ($store:ty, $db:ty, $row:ty) => {
        use $crate::storage::sql::*;
        use $crate::storage::{conflict_or, json_list, parse_json};
        use sqlx::Row as _;

        type Tx<'a> = sqlx::Transaction<'a, $db>;

        impl $store {
            fn org_from_row(row: &$row) -> StoreResult<Organization> {
                Ok(Organization {
                    id: row.try_get("id")?,
                    slug: row.try_get("slug")?,
                    name: row.try_get("name")?,
                    settings: parse_json("organizations.settings", &row.try_get::<String, _>("settings")?)?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn app_from_row(row: &$row) -> StoreResult<Application> {
                let client_type: String = row.try_get("client_type")?;
                let grant_names: Vec<String> = parse_json("applications.grant_types", &row.try_get::<String, _>("grant_types")?)?;
                Ok(Application {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    client_id: row.try_get("client_id")?,
                    name: row.try_get("name")?,
                    client_type: ClientType::parse(&client_type)
                        .ok_or_else(|| StoreError::Corrupt(format!("applications.client_type {client_type:?}")))?,
                    client_secret_hash: row.try_get("client_secret_hash")?,
                    redirect_uris: parse_json("applications.redirect_uris", &row.try_get::<String, _>("redirect_uris")?)?,
                    post_logout_redirect_uris: parse_json(
                        "applications.post_logout_redirect_uris",
                        &row.try_get::<String, _>("post_logout_redirect_uris")?,
                    )?,
                    grant_types: grant_names
                        .iter()
                        .map(|g| GrantType::parse(g).ok_or_else(|| StoreError::Corrupt(format!("grant type {g:?}"))))
                        .collect::<StoreResult<_>>()?,
                    cors_origins: parse_json("applications.cors_origins", &row.try_get::<String, _>("cors_origins")?)?,
                    first_party: row.try_get("first_party")?,
                    settings: parse_json("applications.settings", &row.try_get::<String, _>("settings")?)?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn user_from_row(row: &$row) -> StoreResult<User> {
                Ok(User {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    email: row.try_get("email")?,
                    email_normalized: row.try_get("email_normalized")?,
                    email_verified: row.try_get("email_verified")?,
                    name: row.try_get("name")?,
                    session_version: row.try_get("session_version")?,
                    disabled: row.try_get("disabled")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn credential_from_row(row: &$row) -> StoreResult<Credential> {
                let kind: String = row.try_get("kind")?;
                Ok(Credential {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    kind: CredentialKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("credentials.kind {kind:?}")))?,
                    name: row.try_get("name")?,
                    secret: row.try_get("secret")?,
                    data: row.try_get("data")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                })
            }

            fn key_from_row(row: &$row) -> StoreResult<SigningKeyRecord> {
                let state: String = row.try_get("state")?;
                Ok(SigningKeyRecord {
                    kid: row.try_get("kid")?,
                    org_id: row.try_get("org_id")?,
                    alg: row.try_get("alg")?,
                    private_key_sealed: row.try_get("private_key")?,
                    public_jwk: row.try_get("public_jwk")?,
                    state: KeyState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("signing_keys.state {state:?}")))?,
                    created_at: row.try_get("created_at")?,
                    activated_at: row.try_get("activated_at")?,
                    retired_at: row.try_get("retired_at")?,
                    publish_until: row.try_get("publish_until")?,
                })
            }

            fn audit_from_row(row: &$row) -> StoreResult<AuditEvent> {
                Ok(AuditEvent {
                    org_id: row.try_get("org_id")?,
                    seq: row.try_get("seq")?,
                    at: row.try_get("at")?,
                    actor_type: row.try_get("actor_type")?,
                    actor_id: row.try_get("actor_id")?,
                    actor_role: row.try_get("actor_role")?,
                    ip: row.try_get("ip")?,
                    user_agent: row.try_get("user_agent")?,
                    action: row.try_get("action")?,
                    target_type: row.try_get("target_type")?,
                    target_id: row.try_get("target_id")?,
                    before_state: row.try_get("before_state")?,
                    after_state: row.try_get("after_state")?,
                    prev_hash: row.try_get("prev_hash")?,
                    hash: row.try_get("hash")?,
                    chain_version: row.try_get("chain_version")?,
                })
            }

            fn session_from_row(row: &$row) -> StoreResult<Session> {
                Ok(Session {
                    id_hash: row.try_get("id_hash")?,
                    public_id: row.try_get("public_id")?,
                    org_id: row.try_get("org_id")?,
                    user_id: row.try_get("user_id")?,
                    auth_time: row.try_get("auth_time")?,
                    amr: parse_json("sessions.amr", &row.try_get::<String, _>("amr")?)?,
                    acr: row.try_get("acr")?,
                    ip: row.try_get("ip")?,
                    user_agent: row.try_get("user_agent")?,
                    session_version: row.try_get("session_version")?,
                    created_at: row.try_get("created_at")?,
                    last_seen_at: row.try_get("last_seen_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    mfa_at: row.try_get("mfa_at")?,
                })
            }

            fn grant_from_row(row: &$row) -> StoreResult<Grant> {
                Ok(Grant {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    app_id: row.try_get("app_id")?,
                    user_id: row.try_get("user_id")?,
                    session_id: row.try_get("session_id")?,
                    scope: row.try_get("scope")?,
                    auth_time: row.try_get("auth_time")?,
                    amr: parse_json("token_families.amr", &row.try_get::<String, _>("amr")?)?,
                    acr: row.try_get("acr")?,
                    session_version: row.try_get("session_version")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    revoked_reason: row.try_get("revoked_reason")?,
                })
            }

            fn code_from_row(row: &$row) -> StoreResult<AuthorizationCode> {
                Ok(AuthorizationCode {
                    code_hash: row.try_get("code_hash")?,
                    grant_id: row.try_get("family_id")?,
                    redirect_uri: row.try_get("redirect_uri")?,
                    nonce: row.try_get("nonce")?,
                    code_challenge: row.try_get("code_challenge")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    consumed_at: row.try_get("consumed_at")?,
                })
            }

            fn refresh_from_row(row: &$row) -> StoreResult<RefreshToken> {
                Ok(RefreshToken {
                    token_hash: row.try_get("token_hash")?,
                    grant_id: row.try_get("family_id")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                })
            }

            fn one_time_from_row(row: &$row) -> StoreResult<OneTimeToken> {
                Ok(OneTimeToken {
                    token_hash: row.try_get("token_hash")?,
                    org_id: row.try_get("org_id")?,
                    user_id: row.try_get("user_id")?,
                    purpose: row.try_get("purpose")?,
                    data: row.try_get("data")?,
                    attempts: row.try_get("attempts")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    consumed_at: row.try_get("consumed_at")?,
                })
            }

            async fn insert_user_tx(tx: &mut Tx<'_>, user: &User, credentials: &[Credential]) -> StoreResult<()> {
                sqlx::query(&format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
                    .bind(&user.id)
                    .bind(&user.org_id)
                    .bind(&user.email)
                    .bind(&user.email_normalized)
                    .bind(user.email_verified)
                    .bind(&user.name)
                    .bind(user.session_version)
                    .bind(user.disabled)
                    .bind(user.created_at)
                    .bind(user.updated_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| conflict_or(e, &format!("a user with email {}", user.email)))?;
                for c in credentials {
                    Self::insert_credential_tx(tx, c).await?;
                }
                Ok(())
            }

            async fn insert_credential_tx(tx: &mut Tx<'_>, c: &Credential) -> StoreResult<()> {
                sqlx::query(&format!("INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                    .bind(&c.id)
                    .bind(&c.user_id)
                    .bind(c.kind.as_str())
                    .bind(&c.name)
                    .bind(&c.secret)
                    .bind(&c.data)
                    .bind(c.created_at)
                    .bind(c.last_used_at)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn insert_session_tx(tx: &mut Tx<'_>, session: &Session) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ))
                .bind(&session.id_hash)
                .bind(&session.org_id)
                .bind(&session.user_id)
                .bind(&session.public_id)
                .bind(session.auth_time)
                .bind(json_list(&session.amr))
                .bind(&session.acr)
                .bind(&session.ip)
                .bind(&session.user_agent)
                .bind(session.session_version)
                .bind(session.created_at)
                .bind(session.last_seen_at)
                .bind(session.expires_at)
                .bind(session.revoked_at)
                .bind(session.mfa_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn insert_one_time_tx(tx: &mut Tx<'_>, token: &OneTimeToken) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO one_time_tokens ({ONE_TIME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&token.token_hash)
                .bind(&token.org_id)
                .bind(&token.user_id)
                .bind(&token.purpose)
                .bind(&token.data)
                .bind(token.attempts)
                .bind(token.created_at)
                .bind(token.expires_at)
                .bind(token.consumed_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Consumes a live one-time token inside `tx`; true only for the caller that consumed it.
            async fn consume_one_time_tx(tx: &mut Tx<'_>, token_hash: &[u8], purpose: &str, now: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE one_time_tokens SET consumed_at = $3 \
                     WHERE token_hash = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > $3",
                )
                .bind(token_hash)
                .bind(purpose)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Ends the grants the browser sessions made (their refresh and access tokens die with them),
            /// except those whose scope holds one of `keep_scopes`: which grants outlive a session is the
            /// domain's rule (`sessions::grants`), handed over as data and matched per scope token here.
            async fn revoke_session_grants_tx(tx: &mut Tx<'_>, user_id: &str, session_public_ids: &[String], keep_scopes: &[&str], now: i64) -> StoreResult<()> {
                for sid in session_public_ids {
                    let rows = sqlx::query(
                        "SELECT id, scope FROM token_families WHERE user_id = $1 AND session_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(user_id)
                    .bind(sid)
                    .fetch_all(&mut **tx)
                    .await?;
                    for row in rows {
                        let scope: String = row.try_get("scope")?;
                        if scope.split_ascii_whitespace().any(|s| keep_scopes.contains(&s)) {
                            continue;
                        }
                        let id: String = row.try_get("id")?;
                        sqlx::query(
                            "UPDATE token_families SET revoked_at = $2, revoked_reason = 'session_ended' \
                             WHERE id = $1 AND revoked_at IS NULL",
                        )
                        .bind(id)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                Ok(())
            }

            /// An outbox row with its body unsealed. A delivered message has no body any more (empty); a row
            /// from before bodies were sealed still holds it in `body_text` until the start-up step seals it.
            fn outbox_from_row(&self, row: &$row) -> StoreResult<OutboxEntry> {
                let id: String = row.try_get("id")?;
                let sealed: Option<Vec<u8>> = row.try_get("body_sealed")?;
                let body_text = match sealed {
                    Some(sealed) => {
                        let plain = self
                            .sealing
                            .secrets
                            .open(&$crate::email::body_aad(&id), &sealed)
                            .map_err(|e| StoreError::Corrupt(format!("email_outbox {id}: {e}")))?;
                        String::from_utf8(plain)
                            .map_err(|_| StoreError::Corrupt(format!("email_outbox {id}: body is not UTF-8")))?
                    }
                    None => row.try_get("body_text")?,
                };
                Ok(OutboxEntry {
                    email: OutgoingEmail {
                        id: id.into(),
                        org_id: row.try_get("org_id")?,
                        recipient: row.try_get("recipient")?,
                        subject: row.try_get("subject")?,
                        body_text,
                        created_at: row.try_get("created_at")?,
                    },
                    sent_at: row.try_get("sent_at")?,
                    attempts: row.try_get("attempts")?,
                    last_error: row.try_get("last_error")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    failed_at: row.try_get("failed_at")?,
                })
            }

            /// Queues an email inside `tx`, so it is stored exactly when the action that sends it is. The body
            /// (codes, links) is sealed under the master key, bound to the message id; `body_text` stays empty.
            async fn insert_email_tx(tx: &mut Tx<'_>, sealing: &StoreSealing, email: &OutgoingEmail) -> StoreResult<()> {
                let sealed = sealing.secrets.seal(&$crate::email::body_aad(&email.id), email.body_text.as_bytes());
                sqlx::query(
                    "INSERT INTO email_outbox (id, org_id, recipient, subject, body_text, body_sealed, created_at) \
                     VALUES ($1, $2, $3, $4, '', $5, $6)",
                )
                .bind(&email.id)
                .bind(&email.org_id)
                .bind(&email.recipient)
                .bind(&email.subject)
                .bind(sealed)
                .bind(email.created_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn insert_refresh_tx(tx: &mut Tx<'_>, token: &RefreshToken) -> StoreResult<()> {
                sqlx::query(&format!("INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"))
                    .bind(&token.token_hash)
                    .bind(&token.grant_id)
                    .bind(token.created_at)
                    .bind(token.expires_at)
                    .bind(token.used_at)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Appends `events` (all of one organization) to its chain inside `tx`. The head row is advanced
            /// with an upsert first, which takes the row lock (PostgreSQL) or the write lock (SQLite), so
            /// concurrent appends queue up instead of forking the chain. The events go in as one multi-row
            /// INSERT per chunk: the audit writer's batches cost a handful of statements, not four per event.
            async fn append_audit_chain_tx(
                tx: &mut Tx<'_>,
                sealing: &StoreSealing,
                org_id: &str,
                events: &[&NewAuditEvent],
            ) -> StoreResult<Vec<AuditEvent>> {
                // A legacy chain the keying migration recorded is closed before anything else joins it,
                // but only while its head is still the one recorded (a chain written in later is never
                // sealed; verification flags it).
                let pending = sqlx::query("DELETE FROM audit_keying_pending WHERE org_id = $1 RETURNING seq, hash")
                    .bind(org_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let mut closing = None;
                if let Some(pending) = pending {
                    let (seq, hash): (i64, String) = (pending.try_get("seq")?, pending.try_get("hash")?);
                    let head = sqlx::query("SELECT seq, hash FROM audit_heads WHERE org_id = $1")
                        .bind(org_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if let Some(head) = head
                        && head.try_get::<i64, _>("seq")? == seq
                        && head.try_get::<String, _>("hash")? == hash
                    {
                        closing = Some(chain_keyed_event(org_id, seq, &hash));
                    }
                }
                let own = events.len();
                let events: Vec<&NewAuditEvent> = closing.iter().chain(events.iter().copied()).collect();
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                // One statement creates the head (first event of the organization) or advances it.
                let head = sqlx::query(
                    "INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, $2, $3) \
                     ON CONFLICT (org_id) DO UPDATE SET seq = audit_heads.seq + excluded.seq \
                     RETURNING seq, hash",
                )
                .bind(org_id)
                .bind(events.len() as i64)
                .bind(GENESIS_HASH)
                .fetch_one(&mut **tx)
                .await?;
                let last_seq: i64 = head.try_get("seq")?;
                let mut prev_hash: String = head.try_get("hash")?;
                let now = $crate::time_now();
                let mut sealed = Vec::with_capacity(events.len());
                for (i, event) in events.iter().enumerate() {
                    let e = event.seal(&sealing.audit, last_seq - events.len() as i64 + 1 + i as i64, now, &prev_hash);
                    prev_hash = e.hash.clone();
                    sealed.push(e);
                }
                for chunk in sealed.chunks(64) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO audit_events ({AUDIT_COLUMNS}) "));
                    insert.push_values(chunk, |mut row, e| {
                        row.push_bind(e.org_id.clone())
                            .push_bind(e.seq)
                            .push_bind(e.at)
                            .push_bind(e.actor_type.clone())
                            .push_bind(e.actor_id.clone())
                            .push_bind(e.actor_role.clone())
                            .push_bind(e.ip.clone())
                            .push_bind(e.user_agent.clone())
                            .push_bind(e.action.clone())
                            .push_bind(e.target_type.clone())
                            .push_bind(e.target_id.clone())
                            .push_bind(e.before_state.clone())
                            .push_bind(e.after_state.clone())
                            .push_bind(e.prev_hash.clone())
                            .push_bind(e.hash.clone())
                            .push_bind(e.chain_version);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                sqlx::query("UPDATE audit_heads SET hash = $2 WHERE org_id = $1")
                    .bind(org_id)
                    .bind(&prev_hash)
                    .execute(&mut **tx)
                    .await?;
                // The caller's events, without a closing event put in front of them.
                Ok(sealed.split_off(sealed.len() - own))
            }

            async fn append_audit_tx(tx: &mut Tx<'_>, sealing: &StoreSealing, event: &NewAuditEvent) -> StoreResult<AuditEvent> {
                let mut sealed = Self::append_audit_chain_tx(tx, sealing, &event.org_id, &[event]).await?;
                Ok(sealed.remove(0))
            }

            async fn insert_key_tx(tx: &mut Tx<'_>, key: &SigningKeyRecord) -> StoreResult<()> {
                sqlx::query(&format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
                    .bind(&key.kid)
                    .bind(&key.org_id)
                    .bind(&key.alg)
                    .bind(&key.private_key_sealed)
                    .bind(&key.public_jwk)
                    .bind(key.state.as_str())
                    .bind(key.created_at)
                    .bind(key.activated_at)
                    .bind(key.retired_at)
                    .bind(key.publish_until)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| conflict_or(e, "signing key"))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.read_pool()).await?;
                Ok(())
            }

            async fn probe_write(&self) -> StoreResult<()> {
                sqlx::query("INSERT INTO instance_meta (key, value) VALUES ('write_probe', $1) \
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                    .bind(crate::time_now().to_be_bytes().to_vec())
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }

            async fn migrate(&self) -> StoreResult<Vec<String>> {
                self.migrate_impl().await
            }

            async fn close(&self) {
                self.close_impl().await
            }

            async fn meta_get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
                let row = sqlx::query("SELECT value FROM instance_meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(self.read_pool())
                    .await?;
                Ok(match row {
                    Some(row) => Some(row.try_get("value")?),
                    None => None,
                })
            }

            async fn meta_insert_if_absent(&self, key: &str, value: &[u8]) -> StoreResult<()> {
                sqlx::query("INSERT INTO instance_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }

            async fn create_org(
                &self,
                org: &Organization,
                keys: &[SigningKeyRecord],
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                sqlx::query(&format!("INSERT INTO organizations ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
                    .bind(&org.id)
                    .bind(&org.slug)
                    .bind(&org.name)
                    .bind(serde_json::to_string(&org.settings).unwrap_or_else(|_| "{}".into()))
                    .bind(org.created_at)
                    .bind(org.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict_or(e, &format!("an organization with slug {:?}", org.slug)))?;
                for key in keys {
                    Self::insert_key_tx(&mut tx, key).await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn org_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
                let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE slug = $1"))
                    .bind(slug)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::org_from_row).transpose()
            }

            async fn org_by_id(&self, id: &str) -> StoreResult<Option<Organization>> {
                let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::org_from_row).transpose()
            }

            async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
                let rows = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY slug"))
                    .fetch_all(self.read_pool())
                    .await?;
                rows.iter().map(Self::org_from_row).collect()
            }

            async fn create_app(&self, app: &Application, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                let grants: Vec<&str> = app.grant_types.iter().map(|g| g.as_str()).collect();
                sqlx::query(&format!(
                    "INSERT INTO applications ({APP_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ))
                .bind(&app.id)
                .bind(&app.org_id)
                .bind(&app.client_id)
                .bind(&app.name)
                .bind(app.client_type.as_str())
                .bind(&app.client_secret_hash)
                .bind(json_list(&app.redirect_uris))
                .bind(json_list(&app.post_logout_redirect_uris))
                .bind(json_list(&grants))
                .bind(json_list(&app.cors_origins))
                .bind(app.first_party)
                .bind(serde_json::to_string(&app.settings).unwrap_or_else(|_| "{}".into()))
                .bind(app.created_at)
                .bind(app.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "an application with this client_id"))?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<Application>> {
                let row = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM applications WHERE client_id = $1"))
                    .bind(client_id)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::app_from_row).transpose()
            }

            async fn list_apps(&self, org_id: &str) -> StoreResult<Vec<Application>> {
                let rows = sqlx::query(&format!(
                    "SELECT {APP_COLUMNS} FROM applications WHERE org_id = $1 ORDER BY created_at, name"
                ))
                .bind(org_id)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(Self::app_from_row).collect()
            }

            async fn update_app(&self, app: &Application, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                let done = sqlx::query(
                    "UPDATE applications SET name = $2, redirect_uris = $3, post_logout_redirect_uris = $4, \
                     cors_origins = $5, first_party = $6, settings = $7, updated_at = $8 WHERE id = $1",
                )
                .bind(&app.id)
                .bind(&app.name)
                .bind(json_list(&app.redirect_uris))
                .bind(json_list(&app.post_logout_redirect_uris))
                .bind(json_list(&app.cors_origins))
                .bind(app.first_party)
                .bind(serde_json::to_string(&app.settings).unwrap_or_else(|_| "{}".into()))
                .bind(app.updated_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done == 0 {
                    return Err(StoreError::NotFound(format!("application {}", app.client_id)));
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_user(
                &self,
                user: &User,
                credentials: &[Credential],
                role: Option<Role>,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                Self::insert_user_tx(&mut tx, user, credentials).await?;
                if let Some(role) = role {
                    sqlx::query("INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(&user.org_id)
                        .bind(&user.id)
                        .bind(role.as_str())
                        .bind(user.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
                let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn user_by_email(&self, org_id: &str, email_normalized: &str) -> StoreResult<Option<User>> {
                let row = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND email_normalized = $2"
                ))
                .bind(org_id)
                .bind(email_normalized)
                .fetch_optional(self.read_pool())
                .await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn list_users(&self, org_id: &str) -> StoreResult<Vec<User>> {
                let rows = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 ORDER BY email_normalized"
                ))
                .bind(org_id)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(Self::user_from_row).collect()
            }

            async fn credentials(&self, user_id: &str, kind: CredentialKind) -> StoreResult<Vec<Credential>> {
                let rows = sqlx::query(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1 AND kind = $2 ORDER BY created_at, id"
                ))
                .bind(user_id)
                .bind(kind.as_str())
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(Self::credential_from_row).collect()
            }

            async fn update_credential_secret(&self, credential_id: &str, secret: &[u8], audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                let done = sqlx::query("UPDATE credentials SET secret = $2 WHERE id = $1")
                    .bind(credential_id)
                    .bind(secret)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done == 0 {
                    return Err(StoreError::NotFound(format!("credential {credential_id}")));
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn user_credentials(&self, user_id: &str) -> StoreResult<Vec<Credential>> {
                let rows = sqlx::query(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = $1 ORDER BY created_at, id"
                ))
                .bind(user_id)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(Self::credential_from_row).collect()
            }

            async fn add_credentials(
                &self,
                user_id: &str,
                credentials: &[Credential],
                replace: &[CredentialKind],
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                for kind in replace {
                    sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND kind = $2")
                        .bind(user_id)
                        .bind(kind.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                for c in credentials {
                    Self::insert_credential_tx(&mut tx, c).await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_credentials(&self, user_id: &str, ids: &[CredentialId], audit: &NewAuditEvent) -> StoreResult<u64> {
                let mut tx = self.write_pool().begin().await?;
                let mut deleted = 0;
                for id in ids {
                    deleted += sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND id = $2")
                        .bind(user_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                if deleted > 0 {
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn use_credential(
                &self,
                credential_id: &str,
                consume: bool,
                now: i64,
                notice: Option<&OutgoingEmail>,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                // Consuming deletes the row, so two concurrent uses of one recovery code cannot both win.
                let done = if consume {
                    sqlx::query("DELETE FROM credentials WHERE id = $1")
                        .bind(credential_id)
                        .execute(&mut *tx)
                        .await?
                } else {
                    sqlx::query("UPDATE credentials SET last_used_at = $2 WHERE id = $1")
                        .bind(credential_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                }
                .rows_affected()
                    == 1;
                if done {
                    if let Some(email) = notice {
                        Self::insert_email_tx(&mut tx, &self.sealing, email).await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok(done)
            }

            async fn update_credential_use(&self, credential_id: &str, data: &str, now: i64, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                sqlx::query("UPDATE credentials SET data = $2, last_used_at = $3 WHERE id = $1")
                    .bind(credential_id)
                    .bind(data)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn member_role(&self, org_id: &str, user_id: &str) -> StoreResult<Option<Role>> {
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id)
                        .bind(user_id)
                        .fetch_optional(self.read_pool())
                        .await?;
                role.map(|r| Role::parse(&r).ok_or_else(|| StoreError::Corrupt(format!("role {r:?}"))))
                    .transpose()
            }

            async fn record_second_factor(
                &self,
                id_hash: &[u8],
                amr: &[String],
                acr: &str,
                now: i64,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET mfa_at = $2, amr = $3, acr = $4 WHERE id_hash = $1 AND revoked_at IS NULL",
                )
                .bind(id_hash)
                .bind(now)
                .bind(json_list(amr))
                .bind(acr)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if done {
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok(done)
            }

            async fn update_org(&self, org: &Organization, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                let settings = serde_json::to_string(&org.settings)
                    .map_err(|e| StoreError::Corrupt(format!("organization settings: {e}")))?;
                let done = sqlx::query("UPDATE organizations SET name = $2, settings = $3, updated_at = $4 WHERE id = $1")
                    .bind(&org.id)
                    .bind(&org.name)
                    .bind(settings)
                    .bind(org.updated_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done == 0 {
                    return Err(StoreError::NotFound(format!("organization {}", org.slug)));
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn bump_session_version(&self, user_id: &str, audit: &NewAuditEvent) -> StoreResult<i64> {
                let mut tx = self.write_pool().begin().await?;
                let row = sqlx::query(
                    "UPDATE users SET session_version = session_version + 1, updated_at = $2 WHERE id = $1 \
                     RETURNING session_version",
                )
                .bind(user_id)
                .bind($crate::time_now())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
                let version: i64 = row.try_get("session_version")?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(version)
            }

            async fn list_members(&self, org_id: &str) -> StoreResult<Vec<Member>> {
                let rows = sqlx::query(
                    "SELECT m.user_id, u.email, m.role FROM org_members m JOIN users u ON u.id = m.user_id \
                     WHERE m.org_id = $1 ORDER BY u.email_normalized",
                )
                .bind(org_id)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter()
                    .map(|row| {
                        let role: String = row.try_get("role")?;
                        Ok(Member {
                            user_id: row.try_get("user_id")?,
                            email: row.try_get("email")?,
                            role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                        })
                    })
                    .collect()
            }

            async fn signing_keys(&self, org_id: &str) -> StoreResult<Vec<SigningKeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM signing_keys WHERE org_id = $1 ORDER BY created_at, kid"
                ))
                .bind(org_id)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn add_signing_keys(&self, keys: &[SigningKeyRecord], audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                for key in keys {
                    Self::insert_key_tx(&mut tx, key).await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn rotate_signing_keys(
                &self,
                org_id: &str,
                alg: &str,
                promote_kid: &str,
                new_keys: &[SigningKeyRecord],
                now: i64,
                retired_publish_until: i64,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $3, publish_until = $4 \
                     WHERE org_id = $1 AND alg = $2 AND state = 'active'",
                )
                .bind(org_id)
                .bind(alg)
                .bind(now)
                .bind(retired_publish_until)
                .execute(&mut *tx)
                .await?;
                for key in new_keys {
                    Self::insert_key_tx(&mut tx, key).await?;
                }
                let promoted = sqlx::query(
                    "UPDATE signing_keys SET state = 'active', activated_at = $3 \
                     WHERE org_id = $1 AND kid = $2 AND state = 'next'",
                )
                .bind(org_id)
                .bind(promote_kid)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if promoted.rows_affected() != 1 {
                    // Another rotation won the race; roll back rather than leave two active keys.
                    return Err(StoreError::Conflict("a concurrent key rotation".into()));
                }
                sqlx::query("DELETE FROM signing_keys WHERE org_id = $1 AND state = 'retired' AND publish_until < $2")
                    .bind(org_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_session(&self, session: &Session, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                Self::insert_session_tx(&mut tx, session).await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn session_by_hash(&self, id_hash: &[u8]) -> StoreResult<Option<Session>> {
                let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"))
                    .bind(id_hash)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::session_from_row).transpose()
            }

            async fn touch_session(&self, id_hash: &[u8], now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL")
                    .bind(id_hash)
                    .bind(now)
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }

            async fn revoke_session(&self, id_hash: &[u8], keep_scopes: &[&str], now: i64, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                let revoked = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL \
                     RETURNING user_id, public_id",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let done = revoked.is_some();
                if let Some(row) = revoked {
                    let user_id: String = row.try_get("user_id")?;
                    let public_id: String = row.try_get("public_id")?;
                    Self::revoke_session_grants_tx(&mut tx, &user_id, &[public_id], keep_scopes, now).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok(done)
            }

            async fn insert_one_time_token(&self, token: &OneTimeToken) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                Self::insert_one_time_tx(&mut tx, token).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn one_time_token(&self, token_hash: &[u8], purpose: &str) -> StoreResult<Option<OneTimeToken>> {
                let row = sqlx::query(&format!(
                    "SELECT {ONE_TIME_COLUMNS} FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2"
                ))
                .bind(token_hash)
                .bind(purpose)
                .fetch_optional(self.read_pool())
                .await?;
                row.as_ref().map(Self::one_time_from_row).transpose()
            }

            async fn consume_one_time_token(&self, token_hash: &[u8], purpose: &str, now: i64) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                let done = Self::consume_one_time_tx(&mut tx, token_hash, purpose, now).await?;
                tx.commit().await?;
                Ok(done)
            }

            async fn user_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
                let rows = sqlx::query(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                     ORDER BY created_at DESC, public_id"
                ))
                .bind(user_id)
                .bind(now)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(Self::session_from_row).collect()
            }

            async fn revoke_user_session(&self, user_id: &str, public_id: &str, keep_scopes: &[&str], now: i64, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND public_id = $2 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(public_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if done {
                    Self::revoke_session_grants_tx(&mut tx, user_id, &[public_id.to_string()], keep_scopes, now).await?;
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok(done)
            }

            async fn revoke_other_sessions(&self, user_id: &str, keep_public_id: &str, keep_scopes: &[&str], now: i64, audit: &NewAuditEvent) -> StoreResult<u64> {
                let mut tx = self.write_pool().begin().await?;
                let rows = sqlx::query(
                    "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND public_id <> $2 AND revoked_at IS NULL \
                     RETURNING public_id",
                )
                .bind(user_id)
                .bind(keep_public_id)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                let ended = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>("public_id"))
                    .collect::<Result<Vec<_>, _>>()?;
                Self::revoke_session_grants_tx(&mut tx, user_id, &ended, keep_scopes, now).await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(ended.len() as u64)
            }

            async fn register_user(
                &self,
                user: &User,
                credentials: &[Credential],
                verification: &OneTimeToken,
                email: &OutgoingEmail,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                Self::insert_user_tx(&mut tx, user, credentials).await?;
                Self::insert_one_time_tx(&mut tx, verification).await?;
                Self::insert_email_tx(&mut tx, &self.sealing, email).await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn issue_one_time_token(
                &self,
                token: Option<&OneTimeToken>,
                email: Option<&OutgoingEmail>,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                if let Some(token) = token {
                    Self::insert_one_time_tx(&mut tx, token).await?;
                }
                if let Some(email) = email {
                    Self::insert_email_tx(&mut tx, &self.sealing, email).await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn reissue_one_time_token(
                &self,
                token: &OneTimeToken,
                email: Option<&OutgoingEmail>,
                audit: Option<&NewAuditEvent>,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                sqlx::query("DELETE FROM one_time_tokens WHERE token_hash = $1")
                    .bind(&token.token_hash)
                    .execute(&mut *tx)
                    .await?;
                Self::insert_one_time_tx(&mut tx, token).await?;
                if let Some(email) = email {
                    Self::insert_email_tx(&mut tx, &self.sealing, email).await?;
                }
                if let Some(audit) = audit {
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn count_token_attempt(
                &self,
                token_hash: &[u8],
                purpose: &str,
                max_attempts: i64,
                now: i64,
            ) -> StoreResult<Option<i64>> {
                let row = sqlx::query(
                    "UPDATE one_time_tokens SET attempts = attempts + 1 \
                     WHERE token_hash = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > $3 AND attempts < $4 \
                     RETURNING attempts",
                )
                .bind(token_hash)
                .bind(purpose)
                .bind(now)
                .bind(max_attempts)
                .fetch_optional(self.write_pool())
                .await?;
                row.map(|r| r.try_get::<i64, _>("attempts")).transpose().map_err(Into::into)
            }

            async fn release_token_attempt(&self, token_hash: &[u8], purpose: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE one_time_tokens SET attempts = attempts - 1 \
                     WHERE token_hash = $1 AND purpose = $2 AND attempts > 0",
                )
                .bind(token_hash)
                .bind(purpose)
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn verify_email(&self, token_hash: &[u8], user_id: &str, now: i64, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                if !Self::consume_one_time_tx(&mut tx, token_hash, $crate::onetime::VERIFY_EMAIL_PURPOSE, now).await? {
                    return Ok(false);
                }
                sqlx::query("UPDATE users SET email_verified = TRUE, updated_at = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn replace_password(
                &self,
                user_id: &str,
                password: &Credential,
                consume: Option<(&[u8], &str)>,
                new_session: Option<&Session>,
                email: Option<&OutgoingEmail>,
                sign_out_everywhere: bool,
                now: i64,
                audit: &NewAuditEvent,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.write_pool().begin().await?;
                if let Some((hash, purpose)) = consume
                    && !Self::consume_one_time_tx(&mut tx, hash, purpose, now).await?
                {
                    return Ok(None);
                }
                sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND kind = 'password'")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                Self::insert_credential_tx(&mut tx, password).await?;
                // Signing out everywhere bumps session_version, which also ends every grant made under the
                // old one; without it the version stays and only the password changes.
                let bump = i64::from(sign_out_everywhere);
                let row = sqlx::query(
                    "UPDATE users SET session_version = session_version + $3, updated_at = $2 WHERE id = $1 \
                     RETURNING session_version",
                )
                .bind(user_id)
                .bind(now)
                .bind(bump)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
                let version: i64 = row.try_get("session_version")?;
                if sign_out_everywhere {
                    sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                        .bind(user_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(session) = new_session {
                    let mut session = session.clone();
                    session.session_version = version;
                    Self::insert_session_tx(&mut tx, &session).await?;
                }
                if let Some(email) = email {
                    Self::insert_email_tx(&mut tx, &self.sealing, email).await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(Some(version))
            }

            async fn update_user_name(&self, user_id: &str, name: Option<&str>, now: i64, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                let done = sqlx::query("UPDATE users SET name = $2, updated_at = $3 WHERE id = $1")
                    .bind(user_id)
                    .bind(name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if done == 0 {
                    return Err(StoreError::NotFound(format!("user {user_id}")));
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn enqueue_email(&self, email: &OutgoingEmail) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                Self::insert_email_tx(&mut tx, &self.sealing, email).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_outbox(&self, org_id: Option<&str>, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
                let rows = match org_id {
                    Some(org_id) => {
                        sqlx::query(&format!(
                            "SELECT {OUTBOX_COLUMNS} FROM email_outbox WHERE org_id = $1 \
                             ORDER BY created_at DESC, id DESC LIMIT $2"
                        ))
                        .bind(org_id)
                        .bind(limit)
                        .fetch_all(self.read_pool())
                        .await?
                    }
                    None => {
                        sqlx::query(&format!(
                            "SELECT {OUTBOX_COLUMNS} FROM email_outbox ORDER BY created_at DESC, id DESC LIMIT $1"
                        ))
                        .bind(limit)
                        .fetch_all(self.read_pool())
                        .await?
                    }
                };
                rows.iter().map(|row| self.outbox_from_row(row)).collect()
            }

            async fn outbox_entry(&self, id: &str) -> StoreResult<Option<OutboxEntry>> {
                let row = sqlx::query(&format!("SELECT {OUTBOX_COLUMNS} FROM email_outbox WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(|row| self.outbox_from_row(row)).transpose()
            }

            async fn claim_due_emails(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutboxEntry>> {
                // The outer WHERE repeats the claim conditions: on PostgreSQL a concurrent claimer that
                // waited for a row lock re-checks them on the updated row and skips what was just claimed.
                let rows = sqlx::query(&format!(
                    "UPDATE email_outbox SET claimed_until = $2 \
                     WHERE id IN (SELECT id FROM email_outbox \
                                  WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
                                    AND (claimed_until IS NULL OR claimed_until < $1) \
                                  ORDER BY created_at, id LIMIT $3) \
                       AND sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
                       AND (claimed_until IS NULL OR claimed_until < $1) \
                     RETURNING {OUTBOX_COLUMNS}"
                ))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(self.write_pool())
                .await?;
                let mut claimed = rows.iter().map(|row| self.outbox_from_row(row)).collect::<StoreResult<Vec<_>>>()?;
                claimed.sort_by(|a, b| (a.email.created_at, &a.email.id).cmp(&(b.email.created_at, &b.email.id)));
                Ok(claimed)
            }

            async fn mark_email_sent(&self, id: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    // A delivered message keeps its metadata, never its body: the codes and links are gone.
                    "UPDATE email_outbox SET sent_at = $2, claimed_until = NULL, body_text = '', body_sealed = NULL \
                     WHERE id = $1 AND sent_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn mark_email_failed(
                &self,
                id: &str,
                error: &str,
                next_attempt_at: i64,
                gave_up_at: Option<i64>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE email_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, \
                     failed_at = $4, claimed_until = NULL WHERE id = $1 AND sent_at IS NULL",
                )
                .bind(id)
                .bind(error)
                .bind(next_attempt_at)
                .bind(gave_up_at)
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn consent_scope(&self, user_id: &str, app_id: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT scope FROM consents WHERE user_id = $1 AND app_id = $2")
                    .bind(user_id)
                    .bind(app_id)
                    .fetch_optional(self.read_pool())
                    .await?;
                Ok(match row {
                    Some(row) => Some(row.try_get("scope")?),
                    None => None,
                })
            }

            async fn save_consent(
                &self,
                user_id: &str,
                app_id: &str,
                scope: &str,
                now: i64,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                sqlx::query(
                    "INSERT INTO consents (user_id, app_id, scope, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, app_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
                )
                .bind(user_id)
                .bind(app_id)
                .bind(scope)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_grant(
                &self,
                grant: &Grant,
                code: Option<&AuthorizationCode>,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                sqlx::query(&format!(
                    "INSERT INTO token_families ({GRANT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ))
                .bind(&grant.id)
                .bind(&grant.org_id)
                .bind(&grant.app_id)
                .bind(&grant.user_id)
                .bind(&grant.session_id)
                .bind(&grant.scope)
                .bind(grant.auth_time)
                .bind(json_list(&grant.amr))
                .bind(&grant.acr)
                .bind(grant.session_version)
                .bind(grant.created_at)
                .bind(grant.expires_at)
                .bind(grant.revoked_at)
                .bind(&grant.revoked_reason)
                .execute(&mut *tx)
                .await?;
                if let Some(code) = code {
                    sqlx::query(&format!("INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                        .bind(&code.code_hash)
                        .bind(&code.grant_id)
                        .bind(&code.redirect_uri)
                        .bind(&code.nonce)
                        .bind(&code.code_challenge)
                        .bind(code.created_at)
                        .bind(code.expires_at)
                        .bind(code.consumed_at)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn grant(&self, id: &str) -> StoreResult<Option<Grant>> {
                let row = sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM token_families WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::grant_from_row).transpose()
            }

            async fn code_by_hash(&self, code_hash: &[u8]) -> StoreResult<Option<AuthorizationCode>> {
                let row = sqlx::query(&format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"))
                    .bind(code_hash)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::code_from_row).transpose()
            }

            async fn redeem_code(
                &self,
                code_hash: &[u8],
                now: i64,
                refresh: Option<&RefreshToken>,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                let consumed = sqlx::query(
                    "UPDATE authorization_codes SET consumed_at = $2 WHERE code_hash = $1 AND consumed_at IS NULL",
                )
                .bind(code_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !consumed {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some(refresh) = refresh {
                    Self::insert_refresh_tx(&mut tx, refresh).await?;
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn refresh_token_by_hash(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>> {
                let row = sqlx::query(&format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1"))
                    .bind(token_hash)
                    .fetch_optional(self.read_pool())
                    .await?;
                row.as_ref().map(Self::refresh_from_row).transpose()
            }

            async fn rotate_refresh_token(
                &self,
                old_hash: &[u8],
                new: &RefreshToken,
                now: i64,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                let used = sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL")
                    .bind(old_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !used {
                    tx.rollback().await?;
                    return Ok(false);
                }
                Self::insert_refresh_tx(&mut tx, new).await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_grant(&self, id: &str, now: i64, reason: &str, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.write_pool().begin().await?;
                let revoked = sqlx::query(
                    "UPDATE token_families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .bind(reason)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if revoked {
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok(revoked)
            }

            async fn revoke_access_token(&self, jti: &str, expires_at: i64, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
                    .bind(jti)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn revoked_access_tokens(&self, now: i64) -> StoreResult<Vec<String>> {
                let rows = sqlx::query("SELECT jti FROM revoked_access_tokens WHERE expires_at > $1")
                    .bind(now)
                    .fetch_all(self.read_pool())
                    .await?;
                rows.iter().map(|row| Ok(row.try_get("jti")?)).collect()
            }

            async fn append_audit_batch(&self, events: &[NewAuditEvent]) -> StoreResult<()> {
                // One chain per organization; order within each is kept.
                let mut by_org: Vec<(&str, Vec<&NewAuditEvent>)> = Vec::new();
                for event in events {
                    match by_org.iter_mut().find(|(org, _)| *org == event.org_id) {
                        Some((_, list)) => list.push(event),
                        None => by_org.push((&event.org_id, vec![event])),
                    }
                }
                let mut tx = self.write_pool().begin().await?;
                for (org_id, list) in &by_org {
                    Self::append_audit_chain_tx(&mut tx, &self.sealing, org_id, list).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<AuditEvent> {
                let mut tx = self.write_pool().begin().await?;
                let sealed = Self::append_audit_tx(&mut tx, &self.sealing, event).await?;
                tx.commit().await?;
                Ok(sealed)
            }

            async fn audit_events(&self, org_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditEvent>> {
                let rows = sqlx::query(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(org_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(Self::audit_from_row).collect()
            }

            async fn audit_head(&self, org_id: &str) -> StoreResult<Option<(i64, String)>> {
                let row = sqlx::query("SELECT seq, hash FROM audit_heads WHERE org_id = $1")
                    .bind(org_id)
                    .fetch_optional(self.read_pool())
                    .await?;
                Ok(match row {
                    Some(row) => Some((row.try_get("seq")?, row.try_get("hash")?)),
                    None => None,
                })
            }

            async fn audit_org_ids(&self) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(
                    "SELECT id AS org_id FROM organizations UNION SELECT org_id FROM audit_heads \
                     UNION SELECT DISTINCT org_id FROM audit_events ORDER BY org_id",
                )
                .fetch_all(self.read_pool())
                .await?;
                rows.iter().map(|row| Ok(row.try_get("org_id")?)).collect()
            }

            async fn close_legacy_audit_chains(&self) -> StoreResult<Vec<(String, i64)>> {
                let pending = sqlx::query("SELECT org_id, seq FROM audit_keying_pending ORDER BY org_id")
                    .fetch_all(self.write_pool())
                    .await?;
                let mut closed = Vec::new();
                for row in &pending {
                    let org_id: String = row.try_get("org_id")?;
                    let seq: i64 = row.try_get("seq")?;
                    let mut tx = self.write_pool().begin().await?;
                    // No events of its own: only the closing one, if the chain is still pending.
                    Self::append_audit_chain_tx(&mut tx, &self.sealing, &org_id, &[]).await?;
                    let head: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_heads WHERE org_id = $1")
                        .bind(&org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    if head == Some(seq + 1) {
                        closed.push((org_id, seq));
                    }
                }
                Ok(closed)
            }

            async fn seal_plain_outbox_bodies(&self) -> StoreResult<u64> {
                let rows = sqlx::query(
                    "SELECT id, body_text FROM email_outbox WHERE body_sealed IS NULL AND body_text <> ''",
                )
                .fetch_all(self.write_pool())
                .await?;
                let mut sealed = 0;
                for row in &rows {
                    let id: String = row.try_get("id")?;
                    let body: String = row.try_get("body_text")?;
                    let done = sqlx::query(
                        "UPDATE email_outbox SET body_sealed = $2, body_text = '' WHERE id = $1 AND body_sealed IS NULL",
                    )
                    .bind(&id)
                    .bind(self.sealing.secrets.seal(&$crate::email::body_aad(&id), body.as_bytes()))
                    .execute(self.write_pool())
                    .await?;
                    sealed += done.rows_affected();
                }
                Ok(sealed)
            }

            async fn set_user_disabled(&self, user_id: &str, disabled: bool, now: i64, audit: &NewAuditEvent) -> StoreResult<Option<u64>> {
                let mut tx = self.write_pool().begin().await?;
                // Disabling also bumps session_version, so every token and session of the user dies with it
                // and stays dead if the user is enabled again.
                let changed = sqlx::query(
                    "UPDATE users SET disabled = $2, updated_at = $3, \
                     session_version = session_version + CASE WHEN $2 THEN 1 ELSE 0 END \
                     WHERE id = $1 AND disabled <> $2",
                )
                .bind(user_id)
                .bind(disabled)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let mut ended = 0;
                if changed > 0 {
                    if disabled {
                        ended = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                            .bind(user_id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        sqlx::query(
                            "UPDATE token_families SET revoked_at = $2, revoked_reason = 'user_disabled' \
                             WHERE user_id = $1 AND revoked_at IS NULL",
                        )
                        .bind(user_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                }
                tx.commit().await?;
                Ok((changed > 0).then_some(ended))
            }

            async fn replace_client_secret(&self, app_id: &str, secret_hash: &[u8], now: i64, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.write_pool().begin().await?;
                let changed = sqlx::query("UPDATE applications SET client_secret_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(app_id)
                    .bind(secret_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("application {app_id}")));
                }
                Self::append_audit_tx(&mut tx, &self.sealing, audit).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;
