//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, byte for byte as Go's
//! golang.org/x/mod/sumdb/note writes and reads them.
//!
//! A note is text ending in a newline, a blank line, then lines `— <key name> <base64(key ID ‖
//! signature)>`. The key ID is the first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
//! Keys travel as text: a verifier key `NAME+<8 hex>+<base64(0x01 ‖ public key)>`, a private
//! key `PRIVATE+KEY+NAME+<8 hex>+<base64(0x01 ‖ seed)>`.

use std::fmt;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in keys and key IDs.
const ED25519_TYPE: u8 = 0x01;
/// What starts every signature line: U+2014 EM DASH and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// More signatures than this make a note malformed (the spec asks for at least 16; Go's 100).
const MAX_SIGNATURES: usize = 100;

/// Why a key or note was refused. Messages never carry private key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum NoteError {
    #[error("the key name {0:?} is not allowed: it must be non-empty, with no spaces, '+' or control characters")]
    BadKeyName(String),
    #[error("the verifier key is malformed: {0}")]
    MalformedVerifierKey(&'static str),
    #[error("the private key is malformed: {0}")]
    MalformedPrivateKey(&'static str),
    #[error("the key has signature type {0:#04x}; only Ed25519 (0x01) is supported")]
    UnsupportedKeyType(u8),
    #[error("the key says its ID is {stated:08x}, but the key's ID is {actual:08x}")]
    KeyIdMismatch { stated: u32, actual: u32 },
    #[error("the text cannot be signed: {0}")]
    UnsignableText(&'static str),
    #[error("the note is malformed: {0}")]
    MalformedNote(&'static str),
    #[error("the note is not signed by {0}")]
    NotSigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("the system's random number generator failed")]
    Random,
}

/// An Ed25519 signing key with its name. `Debug` shows the name and key ID, never the seed.
pub(crate) struct Signer {
    name: String,
    key_id: u32,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A new key named `name`, from the system's random number generator.
    pub(crate) fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| NoteError::Random)?;
        Self::from_seed(name, seed)
    }

    /// The key written by [`Signer::private_key`] (or Go's `note.GenerateKey`); surrounding
    /// whitespace is ignored. Refused unless the stated key ID is the key's own.
    pub(crate) fn from_private_key(text: &str) -> Result<Self, NoteError> {
        let malformed = NoteError::MalformedPrivateKey;
        let mut parts = text.trim().splitn(5, '+');
        if parts.next() != Some("PRIVATE") || parts.next() != Some("KEY") {
            return Err(malformed("it does not start with PRIVATE+KEY+"));
        }
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("it is not PRIVATE+KEY+<name>+<key ID>+<key>"));
        };
        check_name(name)?;
        let stated = parse_key_id(id).ok_or(malformed("the key ID is not 8 lowercase hex digits"))?;
        let seed = parse_key(key, malformed)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| malformed("an Ed25519 seed is 32 bytes"))?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != stated {
            return Err(NoteError::KeyIdMismatch { stated, actual: signer.key_id });
        }
        Ok(signer)
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError::MalformedPrivateKey("the seed is not an Ed25519 key"))?;
        let key_id = key_id(name, pair.public_key().as_ref());
        Ok(Self { name: name.to_owned(), key_id, seed, pair })
    }

    /// The private key text, `PRIVATE+KEY+NAME+<key ID>+<base64(0x01 ‖ seed)>`: a secret.
    pub(crate) fn private_key(&self) -> String {
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.key_id, encode_key(&self.seed))
    }

    /// The verifier key text, `NAME+<key ID>+<base64(0x01 ‖ public key)>`, for clients.
    pub(crate) fn verifier_key(&self) -> String {
        format!("{}+{:08x}+{}", self.name, self.key_id, encode_key(self.pair.public_key().as_ref()))
    }

    /// The key's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The key's ID, the first four bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key).
    #[cfg(test)]
    pub(crate) fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signed note: `text`, a blank line and this key's signature line. `text` must end
    /// in a newline and hold no control character but newline (the note could not be opened).
    /// It may hold blank lines: readers split at the last one.
    pub(crate) fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::UnsignableText("it does not end in a newline"));
        }
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::UnsignableText("it holds a control character other than newline"));
        }
        let mut signature = self.key_id.to_be_bytes().to_vec();
        signature.extend_from_slice(self.pair.sign(text.as_bytes()).as_ref());
        Ok(format!("{text}\n{SIGNATURE_PREFIX}{} {}\n", self.name, STANDARD.encode(signature)))
    }
}

/// An Ed25519 public key with its name, able to check that a note carries its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoteVerifier {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl NoteVerifier {
    /// A verifier key `NAME+<8 lowercase hex>+<base64(0x01 ‖ 32-byte key)>`, surrounding
    /// whitespace ignored. Refused unless the stated key ID is the key's own.
    pub(crate) fn parse(verifier_key: &str) -> Result<Self, NoteError> {
        let malformed = NoteError::MalformedVerifierKey;
        let mut parts = verifier_key.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("it is not <name>+<key ID>+<key>"));
        };
        check_name(name)?;
        let stated = parse_key_id(id).ok_or(malformed("the key ID is not 8 lowercase hex digits"))?;
        let key = parse_key(key, malformed)?;
        let public_key: [u8; 32] = key.try_into().map_err(|_| malformed("an Ed25519 public key is 32 bytes"))?;
        let actual = key_id(name, &public_key);
        if actual != stated {
            return Err(NoteError::KeyIdMismatch { stated, actual });
        }
        Ok(Self { name: name.to_owned(), key_id: actual, public_key })
    }

    /// The key's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The key's ID.
    #[cfg(test)]
    pub(crate) fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Checks the note carries a valid signature by this key (other signers' lines are
    /// ignored); returns the text.
    ///
    /// Refused when the note is malformed (a control character, no blank line before the
    /// signatures, a line there that is not a well-formed signature line, more than 100 of
    /// them), when no line names this key, or when any line naming this key does not verify.
    pub(crate) fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let malformed = NoteError::MalformedNote;
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(malformed("it holds a control character other than newline"));
        }
        let split = note.rfind("\n\n").ok_or(malformed("it has no blank line before its signatures"))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(malformed("its signature lines do not end in a newline"));
        }
        let mut signed = false;
        for (count, line) in signatures.split_terminator('\n').enumerate() {
            if count == MAX_SIGNATURES {
                return Err(malformed("it carries more than 100 signatures"));
            }
            let (name, id, signature) = parse_signature_line(line)?;
            if name != self.name || id != self.key_id {
                continue;
            }
            let key = UnparsedPublicKey::new(&ED25519, &self.public_key);
            if key.verify(text.as_bytes(), &signature).is_err() {
                return Err(NoteError::BadSignature(self.describe()));
            }
            signed = true;
        }
        if !signed {
            return Err(NoteError::NotSigned(self.describe()));
        }
        Ok(text)
    }

    /// `NAME+<key ID>`, as Go names a key in its errors.
    fn describe(&self) -> String {
        format!("{}+{:08x}", self.name, self.key_id)
    }
}

/// `— NAME base64(key ID ‖ signature)` as (name, key ID, signature bytes).
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let malformed = NoteError::MalformedNote;
    let rest =
        line.strip_prefix(SIGNATURE_PREFIX).ok_or(malformed("a line after the blank line is not a signature"))?;
    let (name, encoded) = rest.split_once(' ').ok_or(malformed("a signature line has no signature"))?;
    check_name(name).map_err(|_| malformed("a signature line names a key with a malformed name"))?;
    let mut bytes = STANDARD.decode(encoded).map_err(|_| malformed("a signature is not base64"))?;
    if bytes.len() < 5 {
        return Err(malformed("a signature is too short to hold a key ID and a signature"));
    }
    let signature = bytes.split_off(4);
    let id = u32::from_be_bytes(bytes.try_into().expect("four bytes were kept"));
    Ok((name, id, signature))
}

/// Names must be non-empty, with no Unicode space and no '+' (the spec), and no control
/// character (a note naming one could not be opened).
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c < ' ') {
        return Err(NoteError::BadKeyName(name.to_owned()));
    }
    Ok(())
}

/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), first four bytes, big-endian.
fn key_id(name: &str, public_key: &[u8]) -> u32 {
    let digest =
        Sha256::new().chain_update(name).chain_update([b'\n', ED25519_TYPE]).chain_update(public_key).finalize();
    u32::from_be_bytes(digest[..4].try_into().expect("SHA-256 is longer than four bytes"))
}

/// Eight lowercase hex digits, as the spec writes key IDs.
fn parse_key_id(text: &str) -> Option<u32> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// base64(0x01 ‖ key) as the key bytes, refused with `malformed` unless it is base64 and
/// with `UnsupportedKeyType` unless the type byte is Ed25519's.
fn parse_key(text: &str, malformed: fn(&'static str) -> NoteError) -> Result<Vec<u8>, NoteError> {
    let mut bytes = STANDARD.decode(text).map_err(|_| malformed("the key is not base64"))?;
    match bytes.first() {
        None => Err(malformed("the key is empty")),
        Some(&ED25519_TYPE) => Ok(bytes.split_off(1)),
        Some(&other) => Err(NoteError::UnsupportedKeyType(other)),
    }
}

fn encode_key(key: &[u8]) -> String {
    let mut bytes = vec![ED25519_TYPE];
    bytes.extend_from_slice(key);
    STANDARD.encode(bytes)
}

#[cfg(test)]
#[path = "note_tests.rs"]
mod tests;
