//! The signing key: RSA 2048, generated when the simulator first needs it (never stored), its
//! public half as a JWK, and RS256 JWTs signed with it.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// An RSA key pair with its key id and public components, base64url-encoded as in a JWK.
pub(crate) struct SigningKey {
    pair: KeyPair,
    kid: String,
    n: String,
    e: String,
}

/// Whether a minted token carries a valid signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signature {
    Valid,
    /// One bit flipped after signing, so that verification fails.
    Broken,
}

impl SigningKey {
    /// A fresh key. Fails only if the crypto library cannot generate keys at all, which makes
    /// the identity provider useless: panic with that reason.
    pub(crate) fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("aws-lc generates an RSA 2048 key");
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&n, &e);
        Self { pair, kid, n, e }
    }

    /// The public key as a JWK: `kty`, `use`, `alg`, `kid`, `n`, `e`.
    pub(crate) fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e})
    }

    /// `claims` as an RS256 JWT whose header names this key.
    pub(crate) fn sign(&self, claims: &impl Serialize, signature: Signature) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a JSON value serializes"));
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let message = format!("{header}.{claims}");
        let mut bytes = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message.as_bytes(), &mut bytes)
            .expect("an RSA key signs a message of any length");
        if signature == Signature::Broken
            && let Some(last) = bytes.last_mut()
        {
            *last ^= 1;
        }
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// The RFC 7638 thumbprint of an RSA public key: a `kid` that changes when the key does.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    fn verify(key: &SigningKey, token: &str) -> jsonwebtoken::errors::Result<Value> {
        let jwk: Jwk = serde_json::from_value(key.jwk()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).map(|d| d.claims)
    }

    #[test]
    fn a_signed_token_verifies_with_the_jwk_and_a_broken_one_does_not() {
        let key = SigningKey::generate();
        let good = key.sign(&json!({"sub": "bob"}), Signature::Valid);
        assert_eq!(verify(&key, &good).unwrap()["sub"], "bob");
        assert_eq!(jsonwebtoken::decode_header(&good).unwrap().kid.as_deref(), Some(key.kid.as_str()));
        let broken = key.sign(&json!({"sub": "bob"}), Signature::Broken);
        let error = verify(&key, &broken).unwrap_err();
        assert_eq!(*error.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature);
    }

    #[test]
    fn each_key_has_its_own_kid() {
        assert_ne!(SigningKey::generate().kid, SigningKey::generate().kid);
    }
}
