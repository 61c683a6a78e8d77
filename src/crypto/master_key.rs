//! The deployment's master key and what is derived from it.
//!
//! The master key (32 bytes from the OS CSPRNG, kept as 64 hex characters) never encrypts anything directly:
//! HKDF-SHA-256 derives one subkey for AES-256-GCM (secrets that must be read back: signing keys, TOTP seeds,
//! webhook secrets) and one for HMAC-SHA-256 (server-generated 256-bit secrets that only need checking:
//! client secrets, API keys, one-time tokens). A fast keyed hash is right for those because they carry full
//! entropy; slow password hashes are for what humans choose. Two more HMAC subkeys, each under its own
//! HKDF label, key the audit chain and the audit checkpoints ([`AuditKeys`]), so neither can be recomputed
//! by someone who can only write the database.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::random_bytes;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// First byte of every sealed value, so the format can change without guessing.
const SEALED_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "must be exactly 64 hexadecimal characters (32 bytes); `openssl rand -hex 32` makes one"
    )]
    BadFormat,
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} does not exist")]
    Missing { path: String },
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: String, mode: u32 },
}

/// The master key. Debug output never shows the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&random_bytes(KEY_LEN));
        Self(key)
    }

    pub fn from_hex(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| MasterKeyError::BadFormat)?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| MasterKeyError::BadFormat)?;
        Ok(Self(key))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the key file; with `create_if_missing`, a missing file is created with a fresh key, mode 0600.
    pub fn load_or_create(path: &Path, create_if_missing: bool) -> Result<Self, MasterKeyError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                Self::from_hex(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_if_missing => {
                let key = Self::generate();
                // Written whole to a private temporary file, then linked into place: a process starting at
                // the same moment sees either no key file or a complete one, and the loser adopts the winner's.
                let tmp = path.with_extension(format!("tmp-{}", hex::encode(random_bytes(6))));
                write_private_file(&tmp, format!("{}\n", key.to_hex()).as_bytes()).map_err(
                    |source| MasterKeyError::Create {
                        path: shown.clone(),
                        source,
                    },
                )?;
                let linked = std::fs::hard_link(&tmp, path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok(key),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path, false)
                    }
                    Err(source) => Err(MasterKeyError::Create {
                        path: shown,
                        source,
                    }),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(MasterKeyError::Missing { path: shown })
            }
            Err(source) => Err(MasterKeyError::Read {
                path: shown,
                source,
            }),
        }
    }

    fn derive(&self, label: &[u8]) -> [u8; KEY_LEN] {
        let hk = Hkdf::<Sha256>::new(Some(b"latchkey master key v1"), &self.0);
        let mut out = [0u8; KEY_LEN];
        hk.expand(label, &mut out)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        out
    }

    pub fn secret_box(&self) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new_from_slice(&self.derive(b"aes-256-gcm secrets at rest"))
                .expect("32-byte key"),
            token_hash_key: self.derive(b"hmac-sha-256 token hashes"),
        }
    }

    pub fn audit_keys(&self) -> AuditKeys {
        AuditKeys {
            chain: self.derive(b"hmac-sha-256 audit chain v2"),
            checkpoint: self.derive(b"hmac-sha-256 audit checkpoints v1"),
        }
    }
}

/// The audit log's keys: one links the chain, one signs exported checkpoints. Debug never shows them.
#[derive(Clone)]
pub struct AuditKeys {
    chain: [u8; KEY_LEN],
    checkpoint: [u8; KEY_LEN],
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKeys(…)")
    }
}

impl AuditKeys {
    /// HMAC-SHA-256 of one canonical audit event under the chain key.
    pub fn chain_mac(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.chain, message)
    }

    /// HMAC-SHA-256 of a canonical checkpoint under the checkpoint key.
    pub fn checkpoint_mac(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.checkpoint, message)
    }

    /// Checks a checkpoint's tag in constant time.
    pub fn checkpoint_matches(&self, message: &[u8], tag: &[u8]) -> bool {
        super::constant_time_eq(&self.checkpoint_mac(message), tag)
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), MasterKeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| MasterKeyError::Read {
            path: path.display().to_string(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), MasterKeyError> {
    Ok(())
}

/// Creates `path` with mode 0600 from the first byte written (never briefly world-readable).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened: wrong master key, wrong record, or tampered data")]
pub struct OpenError;

/// Seals and opens secrets at rest, and hashes server-generated tokens. Cheap to clone behind an `Arc`.
pub struct SecretBox {
    cipher: Aes256Gcm,
    token_hash_key: [u8; KEY_LEN],
}

impl SecretBox {
    /// AES-256-GCM with a fresh random nonce; `record_id` is bound as associated data so a sealed value
    /// copied onto another record does not open.
    pub fn seal(&self, record_id: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes(NONCE_LEN).try_into().expect("12 bytes");
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce_bytes),
                Payload {
                    msg: plaintext,
                    aad: record_id.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of in-memory data cannot fail");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, record_id: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEALED_VERSION {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: record_id.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }

    /// HMAC-SHA-256 of a server-generated secret: what the database stores instead of the secret.
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.token_hash_key).expect("any key length");
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Checks a presented secret against a stored hash in constant time.
    pub fn token_matches(&self, token: &str, stored_hash: &[u8]) -> bool {
        super::constant_time_eq(&self.token_hash(token), stored_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_for_its_record() {
        let sb = MasterKey::generate().secret_box();
        let sealed = sb.seal("key_1", b"private key bytes");
        assert_eq!(sb.open("key_1", &sealed).unwrap(), b"private key bytes");
        assert!(
            sb.open("key_2", &sealed).is_err(),
            "associated data binds the record id"
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let sb = MasterKey::generate().secret_box();
        assert_ne!(sb.seal("r", b"same"), sb.seal("r", b"same"));
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let sb = MasterKey::generate().secret_box();
        let mut sealed = sb.seal("r", b"secret");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(sb.open("r", &sealed).is_err());
    }

    #[test]
    fn another_master_key_cannot_open() {
        let sealed = MasterKey::generate().secret_box().seal("r", b"secret");
        assert!(
            MasterKey::generate()
                .secret_box()
                .open("r", &sealed)
                .is_err()
        );
    }

    #[test]
    fn token_hash_is_keyed_and_checked() {
        let key = MasterKey::generate();
        let sb = key.secret_box();
        let hash = sb.token_hash("tok");
        assert!(sb.token_matches("tok", &hash));
        assert!(!sb.token_matches("tok2", &hash));
        assert_ne!(MasterKey::generate().secret_box().token_hash("tok"), hash);
    }

    #[test]
    fn audit_keys_are_distinct_from_each_other_and_from_token_hashes() {
        let key = MasterKey::generate();
        let audit = key.audit_keys();
        assert_ne!(audit.chain_mac(b"m"), audit.checkpoint_mac(b"m"));
        assert_ne!(
            audit.chain_mac(b"m").to_vec(),
            key.secret_box().token_hash("m")
        );
        assert!(audit.checkpoint_matches(b"m", &audit.checkpoint_mac(b"m")));
        assert!(!audit.checkpoint_matches(b"m", &audit.checkpoint_mac(b"n")));
        assert_ne!(
            MasterKey::generate().audit_keys().chain_mac(b"m"),
            audit.chain_mac(b"m")
        );
    }

    #[test]
    fn hex_round_trip_and_bad_format() {
        let key = MasterKey::generate();
        assert_eq!(MasterKey::from_hex(&key.to_hex()).unwrap().0, key.0);
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
