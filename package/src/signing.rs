//! Component signatures: the service's Ed25519 key (made on first use in
//! `<home>/keys/component-signing.pk8`, owner-only), the `signature.json` every published
//! component carries (the SHA-256 of the files that name everything else: the recipe and, for
//! model components, `create-component-version.json`), and its check against a trusted key.
//! The recipe holds every artifact's digest, so a valid signature over it covers them all.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::component::digest;
use crate::error::{ApiError, Result};
use crate::output::OutputFile;

/// The signature's file name inside a component's folder.
pub const SIGNATURE_FILE: &str = "signature.json";
/// The signing key's path under the service home (PKCS#8 v2, as `ring` writes it).
pub const KEY_FILE: &str = "keys/component-signing.pk8";
/// The algorithm named in signature files and exported keys.
pub const ALGORITHM: &str = "Ed25519";
/// What the signed message starts with (so a signature can never be replayed as another kind).
const CONTEXT: &str = "edgepack component signature v1\n";

/// A public key that signatures are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(Vec<u8>);

/// The key as `export-signing-key` prints it and `verify-component --public-key` reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExportedKey {
    /// Always [`ALGORITHM`].
    pub algorithm: String,
    /// [`PublicKey::key_id`].
    pub key_id: String,
    /// The raw 32-byte public key, base64.
    pub public_key: String,
}

impl PublicKey {
    /// The first 16 hex digits of the key's SHA-256: how signature files and reports name it.
    pub fn key_id(&self) -> String {
        Sha256::digest(&self.0).iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The exported form.
    pub fn export(&self) -> ExportedKey {
        ExportedKey { algorithm: ALGORITHM.into(), key_id: self.key_id(), public_key: B64.encode(&self.0) }
    }

    /// Reads a key: the JSON [`ExportedKey`] or the bare base64 of the 32 bytes.
    pub fn parse(text: &str) -> Result<PublicKey> {
        let text = text.trim();
        let b64 = match serde_json::from_str::<ExportedKey>(text) {
            Ok(k) if k.algorithm == ALGORITHM => k.public_key,
            Ok(k) => {
                return Err(ApiError::validation(format!("public key: algorithm {} is not {ALGORITHM}", k.algorithm)))
            }
            Err(_) => text.to_owned(),
        };
        match B64.decode(b64.as_bytes()) {
            Ok(bytes) if bytes.len() == 32 => Ok(PublicKey(bytes)),
            _ => Err(ApiError::validation(
                "public key: expected what export-signing-key prints, or the base64 of a 32-byte Ed25519 key",
            )),
        }
    }
}

/// The service's signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
}

/// `signature.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignatureFile {
    algorithm: String,
    key_id: String,
    /// The signed files, in the order the message lists them.
    signed: Vec<SignedFile>,
    /// Base64 Ed25519 signature of [`message`].
    signature: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignedFile {
    file: String,
    /// Base64 SHA-256, as recipes write digests.
    sha256: String,
}

fn message(signed: &[SignedFile]) -> Vec<u8> {
    let mut m = CONTEXT.to_owned();
    for f in signed {
        m.push_str(&format!("{} {}\n", f.file, f.sha256));
    }
    m.into_bytes()
}

impl Signer {
    /// The key of the service in `root`, made (owner-only) the first time. Two processes
    /// making it at once agree: the first link wins and both read it back.
    pub fn load_or_create(root: &Path) -> Result<Signer> {
        let path = root.join(KEY_FILE);
        let at = |e: std::io::Error| ApiError::internal(format!("signing key {}: {e}", path.display()));
        if !path.exists() {
            let dir = path.parent().expect("a folder");
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(at)?;
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| ApiError::internal("signing key: the system's random source failed"))?;
            let tmp = dir.join(format!(".key-{}", uuid::Uuid::new_v4()));
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut f| f.write_all(doc.as_ref()).and_then(|()| f.sync_all()));
            let linked = written.and_then(|()| std::fs::hard_link(&tmp, &path));
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(at(e)),
                _ => {}
            }
        }
        let bytes = std::fs::read(&path).map_err(at)?;
        let pair = Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| {
            ApiError::internal(format!("signing key {}: not an Ed25519 PKCS#8 key: {e}", path.display()))
        })?;
        Ok(Signer { pair })
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.pair.public_key().as_ref().to_vec())
    }

    /// `signature.json` over `files`.
    pub fn sign(&self, files: &[&OutputFile]) -> OutputFile {
        let signed: Vec<SignedFile> =
            files.iter().map(|f| SignedFile { file: f.name.clone(), sha256: digest(&f.bytes) }).collect();
        let signature = B64.encode(self.pair.sign(&message(&signed)).as_ref());
        let doc = SignatureFile { algorithm: ALGORITHM.into(), key_id: self.public_key().key_id(), signed, signature };
        let mut text = serde_json::to_string_pretty(&doc).expect("serializable");
        text.push('\n');
        OutputFile { name: SIGNATURE_FILE.into(), bytes: text.into_bytes() }
    }
}

/// What does not hold of a component's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// `signature.json` does not parse.
    #[error("{SIGNATURE_FILE} is not a signature file: {0}")]
    NotASignatureFile(String),
    /// Another algorithm than Ed25519.
    #[error("{SIGNATURE_FILE}: algorithm {0} is not {ALGORITHM}")]
    Algorithm(String),
    /// It signs other files than a component of this kind has.
    #[error("{SIGNATURE_FILE} signs {signed:?}, a component of this kind needs {expected:?}")]
    Files {
        /// The files it signs.
        signed: Vec<String>,
        /// The files it should sign.
        expected: Vec<String>,
    },
    /// A signed file changed after signing.
    #[error("{0} is not the file that was signed (its SHA-256 changed after signing)")]
    Changed(String),
    /// Signed with another key than the trusted one.
    #[error("signed with key {signed_by}, not with the trusted key {trusted} (export the signer's key with export-signing-key)")]
    OtherKey {
        /// The key id the signature names.
        signed_by: String,
        /// The trusted key's id.
        trusted: String,
    },
    /// The signature field is not base64.
    #[error("{SIGNATURE_FILE}: the signature is not base64")]
    NotBase64,
    /// The signature does not verify.
    #[error("{SIGNATURE_FILE}: the signature does not verify with key {0}")]
    DoesNotVerify(String),
}

/// Checks `signature` (the bytes of `signature.json`) against `trusted`: it must sign exactly
/// `files` (name, stored bytes), in that order, with their current digests. The error says
/// what does not hold.
pub fn check(
    trusted: &PublicKey,
    signature: &[u8],
    files: &[(&str, &[u8])],
) -> std::result::Result<(), SignatureError> {
    let doc: SignatureFile =
        serde_json::from_slice(signature).map_err(|e| SignatureError::NotASignatureFile(e.to_string()))?;
    if doc.algorithm != ALGORITHM {
        return Err(SignatureError::Algorithm(doc.algorithm));
    }
    let signed: Vec<String> = doc.signed.iter().map(|f| f.file.clone()).collect();
    let expected: Vec<String> = files.iter().map(|f| f.0.to_string()).collect();
    if signed != expected {
        return Err(SignatureError::Files { signed, expected });
    }
    for (s, (name, bytes)) in doc.signed.iter().zip(files) {
        if s.sha256 != digest(bytes) {
            return Err(SignatureError::Changed(name.to_string()));
        }
    }
    if doc.key_id != trusted.key_id() {
        return Err(SignatureError::OtherKey { signed_by: doc.key_id, trusted: trusted.key_id() });
    }
    let sig = B64.decode(doc.signature.as_bytes()).map_err(|_| SignatureError::NotBase64)?;
    UnparsedPublicKey::new(&ED25519, &trusted.0)
        .verify(&message(&doc.signed), &sig)
        .map_err(|_| SignatureError::DoesNotVerify(trusted.key_id()))
}
