//! The provider's shared state: deps plus the in-memory parts of the hot paths (keys, application and
//! organization caches, revoked access tokens, the audit group-commit writer).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::audit::writer::AuditWriter;
use crate::deps::{HasClock, HasConfig, HasDb, HasEphemeral, HasSecrets};
use crate::error::Result;
use crate::kernel::OrgId;
use crate::model::apps::Application;
use crate::model::orgs::Organization;

use super::jwt::{self, Rejected, VerifiedJwt};
use super::keyring::KeyRing;
use super::verified::VerifiedTokens;

/// How long an application or organization record is served from memory. Changes made elsewhere (the
/// CLI, another instance) are seen within this time; changes made here are seen at once.
const RECORD_TTL: Duration = Duration::from_secs(5);
/// Channel on which instances announce revoked access tokens to each other (through Redis).
pub const REVOCATION_CHANNEL: &str = "revoked-access-tokens";
/// How often the revoked-access-token list is re-read from the database: the backstop for announcements
/// missed while Redis was unreachable, and the only path without Redis.
pub const REVOCATION_REFRESH: Duration = Duration::from_secs(2);

struct Cached<T> {
    value: Option<Arc<T>>,
    at: Instant,
}

struct TtlMap<T> {
    map: RwLock<HashMap<String, Cached<T>>>,
}

impl<T> TtlMap<T> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<Option<Arc<T>>> {
        let map = self.map.read().ok()?;
        let entry = map.get(key)?;
        (entry.at.elapsed() < RECORD_TTL).then(|| entry.value.clone())
    }

    fn put(&self, key: &str, value: Option<Arc<T>>) {
        if let Ok(mut map) = self.map.write() {
            // Bounded: a flood of unknown client_ids must not grow memory without limit.
            if map.len() > 10_000 {
                map.retain(|_, v| v.at.elapsed() < RECORD_TTL);
            }
            map.insert(
                key.to_string(),
                Cached {
                    value,
                    at: Instant::now(),
                },
            );
        }
    }
}

/// Applications are cached per organization: the same client id looked up under another organization is
/// another entry (and `None`), as it is in the database.
fn app_cache_key(org: &OrgId, client_id: &str) -> String {
    format!("{org} {client_id}")
}

/// The capabilities the provider's paths (authorize, token, introspection, revocation, logout, key
/// rotation) use, held behind one pointer so the provider is not generic.
pub trait ProviderDeps:
    HasDb + HasSecrets + HasConfig + HasEphemeral + HasClock + Send + Sync
{
}

impl<T: HasDb + HasSecrets + HasConfig + HasEphemeral + HasClock + Send + Sync> ProviderDeps for T {}

pub struct Provider {
    /// What the OAuth paths use; see [`ProviderDeps`].
    pub deps: Arc<dyn ProviderDeps>,
    pub keys: KeyRing,
    pub audit: AuditWriter,
    /// Access tokens already verified, so introspecting the same token again skips the RSA work.
    pub verified: VerifiedTokens,
    apps: TtlMap<Application>,
    orgs: TtlMap<Organization>,
    revoked: RwLock<HashSet<String>>,
    /// Whether `revoked` has been read from the database at least once. Until then no access token is
    /// called active: an empty set would bring every revoked token back to life after a restart.
    revocations_loaded: AtomicBool,
    /// One first load at a time when requests find the set not loaded yet.
    first_load: tokio::sync::Mutex<()>,
    /// Rendered discovery documents by organization slug. They depend only on the issuer, which never
    /// changes for a slug, so they are rendered once.
    discovery: RwLock<HashMap<String, bytes::Bytes>>,
    /// Revocations made here recently, kept across a refresh whose read may predate their commit.
    recent_revocations: RwLock<Vec<(String, Instant)>>,
}

impl Provider {
    /// Creates the provider and starts its background tasks (revocation refresh, scheduled key rotation).
    pub fn start(deps: Arc<dyn ProviderDeps>) -> Arc<Self> {
        let provider = Arc::new(Self {
            audit: AuditWriter::start(deps.db().clone()),
            discovery: RwLock::new(HashMap::new()),
            verified: VerifiedTokens::new(deps.config().verified_token_cache),
            deps,
            keys: KeyRing::default(),
            apps: TtlMap::new(),
            orgs: TtlMap::new(),
            revoked: RwLock::new(HashSet::new()),
            revocations_loaded: AtomicBool::new(false),
            first_load: tokio::sync::Mutex::new(()),
            recent_revocations: RwLock::new(Vec::new()),
        });
        // The first load is the server's to await before it serves (`load_revocations`), or the first
        // introspection's; this task keeps the set fresh afterwards.
        let weak = Arc::downgrade(&provider);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REVOCATION_REFRESH).await;
                let Some(p) = weak.upgrade() else { break };
                if let Err(e) = p.refresh_revocations().await {
                    tracing::warn!(error = %e, "could not refresh revoked access tokens");
                }
            }
        });
        if let Some(mut announcements) = provider.deps.ephemeral().subscribe(REVOCATION_CHANNEL) {
            let weak = Arc::downgrade(&provider);
            tokio::spawn(async move {
                while let Some(jti) = announcements.recv().await {
                    let Some(p) = weak.upgrade() else { break };
                    p.mark_revoked(&jti);
                }
            });
        }
        if provider.deps.config().redis_url.is_some() {
            // Probe Redis every second so degraded mode starts and ends on its own, with or without traffic.
            let weak = Arc::downgrade(&provider);
            tokio::spawn(async move {
                loop {
                    let Some(p) = weak.upgrade() else { break };
                    let _ = p.deps.ephemeral().ping().await;
                    drop(p);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        let weak = Arc::downgrade(&provider);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(p) = weak.upgrade() else { break };
                if let Err(e) = crate::keys::rotate_due(&p.deps).await {
                    tracing::warn!(error = %e, "scheduled key rotation failed");
                }
            }
        });
        provider
    }

    pub async fn org(&self, slug: &str) -> Result<Option<Arc<Organization>>> {
        if let Some(hit) = self.orgs.get(slug) {
            return Ok(hit);
        }
        let org = self
            .deps
            .db()
            .system()
            .org_by_slug(slug)
            .await?
            .map(Arc::new);
        self.orgs.put(slug, org.clone());
        Ok(org)
    }

    /// The organization's application with this `client_id` (another organization's is `None`), cached
    /// for a few seconds per organization and client id.
    pub async fn app(&self, org: &OrgId, client_id: &str) -> Result<Option<Arc<Application>>> {
        if let Some(hit) = self.apps.get(&app_cache_key(org, client_id)) {
            return Ok(hit);
        }
        self.app_uncached(org, client_id).await
    }

    /// The application as stored now, refreshing the cache: for checks that must see a change at once.
    pub async fn app_uncached(
        &self,
        org: &OrgId,
        client_id: &str,
    ) -> Result<Option<Arc<Application>>> {
        let app = self
            .deps
            .db()
            .tenant(org)
            .app_by_client_id(client_id)
            .await?
            .map(Arc::new);
        self.apps.put(&app_cache_key(org, client_id), app.clone());
        Ok(app)
    }

    /// Whether the access token `jti` was revoked. Loads the revoked set first if it never was; fails
    /// (rather than answer "not revoked") when it cannot be loaded.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool> {
        if !self.revocations_loaded() {
            let _one_at_a_time = self.first_load.lock().await;
            if !self.revocations_loaded() {
                self.load_revocations().await?;
            }
        }
        Ok(self
            .revoked
            .read()
            .map(|set| set.contains(jti))
            .unwrap_or(true))
    }

    /// True once the revoked access tokens have been read from the database.
    pub fn revocations_loaded(&self) -> bool {
        self.revocations_loaded.load(Ordering::Acquire)
    }

    /// Reads the revoked access tokens from the database. The server awaits this before it serves.
    pub async fn load_revocations(&self) -> Result<()> {
        self.refresh_revocations().await
    }

    /// Records a revocation made here and announces it to the other instances, so they refuse the token at
    /// once rather than at their next database refresh.
    pub async fn revoke_announced(&self, jti: &str) {
        self.mark_revoked(jti);
        if let Err(e) = self.deps.ephemeral().publish(REVOCATION_CHANNEL, jti).await {
            tracing::warn!(error = %e, "could not announce a revocation; other instances see it within their refresh");
        }
    }

    pub fn mark_revoked(&self, jti: &str) {
        if let Ok(mut set) = self.revoked.write() {
            set.insert(jti.to_string());
        }
        if let Ok(mut recent) = self.recent_revocations.write() {
            recent.push((jti.to_string(), Instant::now()));
        }
    }

    async fn refresh_revocations(&self) -> Result<()> {
        let list = self
            .deps
            .db()
            .system()
            .revoked_access_tokens(self.deps.now())
            .await?;
        let mut fresh: HashSet<String> = list.into_iter().collect();
        if let Ok(mut recent) = self.recent_revocations.write() {
            recent.retain(|(_, at)| at.elapsed() < REVOCATION_REFRESH * 5);
            fresh.extend(recent.iter().map(|(jti, _)| jti.clone()));
        }
        if let Ok(mut set) = self.revoked.write() {
            *set = fresh;
        }
        self.revocations_loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// The discovery document of `org`, as JSON bytes.
    pub fn discovery_document(&self, org: &Organization) -> bytes::Bytes {
        if let Some(doc) = self
            .discovery
            .read()
            .ok()
            .and_then(|m| m.get(&org.slug).cloned())
        {
            return doc;
        }
        let doc = bytes::Bytes::from(super::discovery::metadata(&self.issuer(org)).to_string());
        if let Ok(mut map) = self.discovery.write() {
            map.insert(org.slug.clone(), doc.clone());
        }
        doc
    }

    /// Verifies a JWT that `org` issued (see [`jwt::verify`]). A `kid` not loaded yet (a rotation by
    /// another instance or the CLI) costs one reload of the keys, rate-limited by the key ring, and a retry.
    pub async fn verify_jwt(
        &self,
        org: &Organization,
        token: &str,
        typ: &str,
        now: i64,
        allow_expired: bool,
    ) -> Result<std::result::Result<VerifiedJwt, Rejected>> {
        let issuer = self.issuer(org);
        let keys = self.keys.get(&self.deps, &org.id).await?;
        let outcome = jwt::verify(&keys, token, typ, &issuer, now, allow_expired);
        let Err(Rejected::UnknownKey(kid)) = &outcome else {
            return Ok(outcome);
        };
        let keys = self.keys.get_with_kid(&self.deps, &org.id, kid).await?;
        Ok(jwt::verify(&keys, token, typ, &issuer, now, allow_expired))
    }

    pub fn issuer(&self, org: &Organization) -> String {
        self.deps.config().issuer_for(&org.slug)
    }
}
