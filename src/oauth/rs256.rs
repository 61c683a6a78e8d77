//! RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signer and verifier for josekit that keep their OpenSSL
//! contexts between tokens.
//!
//! josekit's own RS256 types run `EVP_DigestSignInit`/`EVP_DigestVerifyInit` for every token. On OpenSSL 3
//! that setup (provider algorithm fetch, context allocation) was about a twelfth of an introspection
//! request in the profile. Here a context is set up once (key, PKCS#1 v1.5 padding, SHA-256) and reused.
//! The RSA operation is still OpenSSL's `EVP_PKEY_sign`/`EVP_PKEY_verify` over the SHA-256 digest, which
//! is what the digest API does inside; josekit still parses the JWS and checks `alg` and `kid`.

use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::JoseError;
use josekit::jwk::Jwk;
use josekit::jws::alg::rsassa::RsassaJwsAlgorithm;
use josekit::jws::{JwsAlgorithm, JwsSigner, JwsVerifier};
use openssl::bn::BigNum;
use openssl::error::ErrorStack;
use openssl::md::Md;
use openssl::pkey::{HasPublic, PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use sha2::{Digest, Sha256};

/// RFC 7518 §3.3: RS256 keys are at least 2048 bits.
const MIN_MODULUS_BYTES: u32 = 256;
/// Idle contexts kept per key: more than the threads that can use one at the same moment.
const MAX_IDLE: usize = 64;

/// Contexts ready for one more operation. A caller takes one (or sets one up when none is idle) and
/// gives it back after a successful operation; a context that saw an error is dropped, not reused.
struct Contexts<T> {
    key: PKey<T>,
    idle: Mutex<Vec<PkeyCtx<T>>>,
}

impl<T> Contexts<T> {
    fn new(key: PKey<T>) -> Self {
        Self {
            key,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn with<R>(
        &self,
        set_up: fn(&PKey<T>) -> Result<PkeyCtx<T>, ErrorStack>,
        operation: impl FnOnce(&mut PkeyCtx<T>) -> Result<R, ErrorStack>,
    ) -> Result<R, ErrorStack> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut ctx = match idle {
            Some(ctx) => ctx,
            None => set_up(&self.key)?,
        };
        let outcome = operation(&mut ctx)?;
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(ctx);
        }
        Ok(outcome)
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().map(|idle| idle.len()).unwrap_or(0)
    }
}

fn verify_context(key: &PKey<Public>) -> Result<PkeyCtx<Public>, ErrorStack> {
    let mut ctx = PkeyCtx::new(key)?;
    ctx.verify_init()?;
    ctx.set_rsa_padding(Padding::PKCS1)?;
    ctx.set_signature_md(Md::sha256())?;
    Ok(ctx)
}

fn sign_context(key: &PKey<Private>) -> Result<PkeyCtx<Private>, ErrorStack> {
    let mut ctx = PkeyCtx::new(key)?;
    ctx.sign_init()?;
    ctx.set_rsa_padding(Padding::PKCS1)?;
    ctx.set_signature_md(Md::sha256())?;
    Ok(ctx)
}

/// The modulus length in bytes (= the signature length), if the key is RSA of at least 2048 bits.
fn modulus_bytes<T: HasPublic>(key: &PKey<T>) -> Result<usize, String> {
    let rsa = key.rsa().map_err(|_| "not an RSA key".to_string())?;
    if rsa.size() < MIN_MODULUS_BYTES {
        return Err(format!(
            "RSA key of {} bits; RS256 needs 2048 or more",
            rsa.size() * 8
        ));
    }
    Ok(rsa.size() as usize)
}

/// The RustCrypto SHA-256 (SHA-NI where the CPU has it): OpenSSL 3's one-shot `SHA256()` fetches the
/// algorithm on every call, which showed in the introspection profile.
fn sha256(message: &[u8]) -> [u8; 32] {
    Sha256::digest(message).into()
}

fn invalid_signature(reason: impl fmt::Display) -> JoseError {
    JoseError::InvalidSignature(anyhow::anyhow!("{reason}"))
}

#[derive(Clone)]
pub struct Rs256Signer {
    key_id: Option<String>,
    signature_len: usize,
    contexts: Arc<Contexts<Private>>,
}

impl Rs256Signer {
    /// From a PKCS#8 (or PKCS#1) DER private key.
    pub fn from_der(der: &[u8], key_id: &str) -> Result<Self, String> {
        let key = PKey::private_key_from_der(der).map_err(|e| format!("private key: {e}"))?;
        Ok(Self {
            key_id: Some(key_id.to_string()),
            signature_len: modulus_bytes(&key)?,
            contexts: Arc::new(Contexts::new(key)),
        })
    }
}

impl fmt::Debug for Rs256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rs256Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl JwsSigner for Rs256Signer {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        &RsassaJwsAlgorithm::Rs256
    }

    fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    fn signature_len(&self) -> usize {
        self.signature_len
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let digest = sha256(message);
        self.contexts
            .with(sign_context, |ctx| {
                let mut signature = Vec::with_capacity(self.signature_len());
                ctx.sign_to_vec(&digest, &mut signature)?;
                Ok(signature)
            })
            .map_err(invalid_signature)
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

#[derive(Clone)]
pub struct Rs256Verifier {
    key_id: Option<String>,
    contexts: Arc<Contexts<Public>>,
}

impl Rs256Verifier {
    /// From a public RSA JWK (`n`, `e`); its `kid`, if any, must then match the token's.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        if jwk.key_type() != "RSA" {
            return Err(format!("key type {} is not RSA", jwk.key_type()));
        }
        let component = |name: &str| -> Result<BigNum, String> {
            let text = jwk
                .parameter(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("JWK has no {name}"))?;
            let bytes = URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| format!("JWK {name} is not base64url"))?;
            BigNum::from_slice(&bytes).map_err(|e| format!("JWK {name}: {e}"))
        };
        let rsa = Rsa::from_public_components(component("n")?, component("e")?)
            .map_err(|e| format!("RSA public key: {e}"))?;
        let key = PKey::from_rsa(rsa).map_err(|e| format!("RSA public key: {e}"))?;
        modulus_bytes(&key)?;
        Ok(Self {
            key_id: jwk.key_id().map(str::to_string),
            contexts: Arc::new(Contexts::new(key)),
        })
    }
}

impl fmt::Debug for Rs256Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rs256Verifier")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl JwsVerifier for Rs256Verifier {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        &RsassaJwsAlgorithm::Rs256
    }

    fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        let digest = sha256(message);
        match self
            .contexts
            .with(verify_context, |ctx| ctx.verify(&digest, signature))
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(invalid_signature("signature does not match")),
            Err(e) => Err(invalid_signature(e)),
        }
    }

    fn box_clone(&self) -> Box<dyn JwsVerifier> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use josekit::jws::{JwsHeader, RS256};
    use josekit::jwt::{self, JwtPayload};

    use super::*;

    struct Pair {
        der: Vec<u8>,
        jwk: Jwk,
    }

    fn pair(kid: &str) -> Pair {
        let pair = RS256.generate_key_pair(2048).unwrap();
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id(kid);
        Pair {
            der: pair.to_der_private_key(),
            jwk,
        }
    }

    fn token(signer: &dyn JwsSigner) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        let mut payload = JwtPayload::new();
        payload.set_subject("someone");
        jwt::encode_with_signer(&payload, &header, signer).unwrap()
    }

    #[test]
    fn agrees_with_josekits_own_rs256_both_ways() {
        let key = pair("k1");
        let ours = Rs256Signer::from_der(&key.der, "k1").unwrap();
        let mut theirs = RS256.signer_from_der(&key.der).unwrap();
        theirs.set_key_id("k1");
        let our_verifier = Rs256Verifier::from_jwk(&key.jwk).unwrap();
        let their_verifier = RS256.verifier_from_jwk(&key.jwk).unwrap();

        // PKCS#1 v1.5 signatures are deterministic: both produce the same token.
        assert_eq!(token(&ours), token(&theirs));
        for t in [token(&ours), token(&theirs)] {
            let (payload, header) = jwt::decode_with_verifier(&t, &our_verifier).unwrap();
            assert_eq!(payload.subject(), Some("someone"));
            assert_eq!(header.key_id(), Some("k1"));
            jwt::decode_with_verifier(&t, &their_verifier).unwrap();
        }
    }

    #[test]
    fn refuses_tampering_other_keys_and_other_algorithms() {
        let key = pair("k1");
        let other = pair("k1");
        let signer = Rs256Signer::from_der(&key.der, "k1").unwrap();
        let verifier = Rs256Verifier::from_jwk(&key.jwk).unwrap();
        let good = token(&signer);

        let (head, rest) = good.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut forged_payload = payload.to_string();
        forged_payload.replace_range(0..1, if payload.starts_with('A') { "B" } else { "A" });
        let tampered = format!("{head}.{forged_payload}.{signature}");
        assert!(jwt::decode_with_verifier(&tampered, &verifier).is_err());

        let truncated = format!("{head}.{payload}.{}", &signature[..signature.len() - 4]);
        assert!(jwt::decode_with_verifier(&truncated, &verifier).is_err());

        let by_other = token(&Rs256Signer::from_der(&other.der, "k1").unwrap());
        assert!(jwt::decode_with_verifier(&by_other, &verifier).is_err());

        // The same message signed with PS256 (same key, other padding) is not an RS256 signature.
        let mut ps = josekit::jws::PS256.signer_from_der(&key.der).unwrap();
        ps.set_key_id("k1");
        assert!(jwt::decode_with_verifier(token(&ps), &verifier).is_err());

        // After all those failures the verifier still accepts the good token.
        jwt::decode_with_verifier(&good, &verifier).unwrap();
    }

    #[test]
    fn small_keys_and_non_rsa_keys_are_refused() {
        // josekit will not make a 1024-bit key, so OpenSSL does.
        let small = Rsa::generate(1024).unwrap();
        let mut small_jwk = Jwk::new("RSA");
        let b64 = |n: &openssl::bn::BigNumRef| URL_SAFE_NO_PAD.encode(n.to_vec());
        small_jwk
            .set_parameter("n", Some(b64(small.n()).into()))
            .unwrap();
        small_jwk
            .set_parameter("e", Some(b64(small.e()).into()))
            .unwrap();
        let small_der = PKey::from_rsa(small)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        assert!(Rs256Signer::from_der(&small_der, "small").is_err());
        assert!(Rs256Verifier::from_jwk(&small_jwk).is_err());
        let ec = josekit::jws::ES256.generate_key_pair().unwrap();
        assert!(Rs256Signer::from_der(&ec.to_der_private_key(), "ec").is_err());
        assert!(Rs256Verifier::from_jwk(&ec.to_jwk_public_key()).is_err());
    }

    #[test]
    fn contexts_are_reused_and_shared_across_threads() {
        let key = pair("k1");
        let signer = Rs256Signer::from_der(&key.der, "k1").unwrap();
        let verifier = Rs256Verifier::from_jwk(&key.jwk).unwrap();
        for _ in 0..5 {
            jwt::decode_with_verifier(token(&signer), &verifier).unwrap();
        }
        // One at a time: one context each, set up once.
        assert_eq!(signer.contexts.idle_count(), 1);
        assert_eq!(verifier.contexts.idle_count(), 1);

        let good = token(&signer);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        jwt::decode_with_verifier(&good, &verifier).unwrap();
                        token(&signer);
                    }
                });
            }
        });
        assert!((1..=4).contains(&verifier.contexts.idle_count()));
    }
}
