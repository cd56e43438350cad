//! Secrets encryption, byte-compatible with the Go original (`crypto/aes.go`): AES-256-GCM with a
//! random 96-bit nonce stored as `nonce(12) ‖ ciphertext ‖ tag(16)`, no AAD. The version lives in
//! the row's `encryption_version` column: 0 = plaintext, 1 = AES-GCM.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// `encryption_version` of a plaintext row.
pub const VERSION_PLAINTEXT: i32 = 0;
/// `encryption_version` of an AES-256-GCM row.
pub const VERSION_AES_GCM: i32 = 1;

#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("SECRETS_ENCRYPTION_KEY must be base64 of 32 bytes or a raw 32-byte string")]
    InvalidKey,
    #[error("SECRETS_ENCRYPTION_KEY is required when MOLECULE_ENV is production")]
    KeyMissingInProduction,
    #[error("ciphertext too short")]
    CiphertextTooShort,
    #[error("decryption failed")]
    DecryptFailed,
    #[error("encryption failed")]
    EncryptFailed,
    #[error("secret is encrypted but no SECRETS_ENCRYPTION_KEY is configured")]
    KeyNotConfigured,
    #[error("unknown encryption_version={0}; platform upgrade required")]
    UnknownVersion(i32),
}

/// The process's secrets cipher: with a key it encrypts (version 1), without one it stores
/// plaintext (version 0), as the Go original does outside production.
#[derive(Clone)]
pub struct Crypto {
    cipher: Option<Aes256Gcm>,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Crypto")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Crypto {
    /// No key: plaintext storage.
    pub fn disabled() -> Self {
        Crypto { cipher: None }
    }

    /// A cipher from 32 raw key bytes.
    pub fn from_key(key: &[u8; KEY_LEN]) -> Self {
        Crypto {
            cipher: Some(Aes256Gcm::new(key.into())),
        }
    }

    /// Builds the cipher from `SECRETS_ENCRYPTION_KEY`, following the original's rules: standard
    /// padded base64 decoding to exactly 32 bytes; if (and only if) base64 decoding fails, a raw
    /// 32-byte string. Production without a valid key is an error (the server refuses to start).
    pub fn from_env_value(value: Option<&str>, production: bool) -> Result<Crypto, CryptoError> {
        let value = value.filter(|v| !v.is_empty());
        match value {
            Some(text) => Ok(Crypto::from_key(&parse_key(text)?)),
            None if production => Err(CryptoError::KeyMissingInProduction),
            None => Ok(Crypto::disabled()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cipher.is_some()
    }

    /// The version written alongside values this cipher produces.
    pub fn current_version(&self) -> i32 {
        if self.enabled() {
            VERSION_AES_GCM
        } else {
            VERSION_PLAINTEXT
        }
    }

    /// Encrypts `plaintext`, returning the stored bytes and their `encryption_version`.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<(Vec<u8>, i32), CryptoError> {
        let Some(cipher) = &self.cipher else {
            return Ok((plaintext.to_vec(), VERSION_PLAINTEXT));
        };
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), plaintext)
            .map_err(|_| CryptoError::EncryptFailed)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&sealed);
        Ok((blob, VERSION_AES_GCM))
    }

    /// Decrypts a stored value according to its `encryption_version`.
    pub fn decrypt(&self, stored: &[u8], version: i32) -> Result<Vec<u8>, CryptoError> {
        match version {
            VERSION_PLAINTEXT => Ok(stored.to_vec()),
            VERSION_AES_GCM => {
                let cipher = self.cipher.as_ref().ok_or(CryptoError::KeyNotConfigured)?;
                if stored.len() < NONCE_LEN {
                    return Err(CryptoError::CiphertextTooShort);
                }
                let (nonce, sealed) = stored.split_at(NONCE_LEN);
                cipher
                    .decrypt(Nonce::from_slice(nonce), sealed)
                    .map_err(|_| CryptoError::DecryptFailed)
            }
            other => Err(CryptoError::UnknownVersion(other)),
        }
    }
}

fn parse_key(text: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    match STANDARD.decode(text) {
        Ok(decoded) => decoded.try_into().map_err(|_| CryptoError::InvalidKey),
        Err(_) => text
            .as_bytes()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_key_of_32_bytes_is_accepted() {
        let key = STANDARD.encode([7u8; 32]);
        assert!(Crypto::from_env_value(Some(&key), true).unwrap().enabled());
    }

    #[test]
    fn base64_alphabet_key_of_32_chars_is_rejected() {
        // 32 hex characters are valid base64 decoding to 24 bytes: rejected, like the original.
        let key = "0123456789abcdef0123456789abcdef";
        assert!(matches!(
            Crypto::from_env_value(Some(key), false),
            Err(CryptoError::InvalidKey)
        ));
    }

    #[test]
    fn raw_non_base64_key_of_32_bytes_is_accepted() {
        let key = "this-is-not-base64!!-32-bytes-ok";
        assert_eq!(key.len(), 32);
        assert!(Crypto::from_env_value(Some(key), false).unwrap().enabled());
    }

    #[test]
    fn production_requires_a_key() {
        assert!(matches!(
            Crypto::from_env_value(None, true),
            Err(CryptoError::KeyMissingInProduction)
        ));
        assert!(!Crypto::from_env_value(None, false).unwrap().enabled());
    }

    #[test]
    fn round_trip_and_version_rules() {
        let crypto = Crypto::from_key(&[1u8; 32]);
        let (blob, version) = crypto.encrypt(b"secret").unwrap();
        assert_eq!(version, VERSION_AES_GCM);
        assert_eq!(blob.len(), 12 + 6 + 16);
        assert_eq!(crypto.decrypt(&blob, version).unwrap(), b"secret");
        assert_eq!(
            crypto.decrypt(b"plain", VERSION_PLAINTEXT).unwrap(),
            b"plain"
        );
        assert!(matches!(
            crypto.decrypt(&blob, 7),
            Err(CryptoError::UnknownVersion(7))
        ));
        assert!(matches!(
            crypto.decrypt(b"short", 1),
            Err(CryptoError::CiphertextTooShort)
        ));
        assert!(matches!(
            Crypto::disabled().decrypt(&blob, 1),
            Err(CryptoError::KeyNotConfigured)
        ));
    }
}
