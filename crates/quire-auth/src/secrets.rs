//! Secrets at rest (seed 000 §6.2): values such as the token signing key, SSO client secrets
//! and integration tokens are stored sealed with AES-256-GCM under a key from the settings.
//! A sealed value names the key that sealed it (`enc:v1:<key id>:<base64 nonce+ciphertext>`)
//! and is bound to its slot (the slot name is the additional authenticated data), so keys
//! can rotate and a value cannot be moved to another slot unnoticed.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use quire_core::{Error, Result};

const PREFIX: &str = "enc:v1:";

/// The keys that seal and open secrets. The first seals; all of them open.
pub struct Keyring {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("key_ids", &self.ids()).finish()
    }
}

/// A new key in the settings' format, `<id>:<base64 of 32 random bytes>`.
pub fn generate_key() -> String {
    let mut id = [0u8; 4];
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut id).expect("the system random source works");
    aws_lc_rs::rand::fill(&mut key).expect("the system random source works");
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("k{id}:{}", STANDARD.encode(key))
}

impl Keyring {
    /// Reads `id:base64key` entries separated by commas or new lines (the first is current).
    pub fn parse(spec: &str) -> Result<Keyring> {
        let mut keys = Vec::new();
        for entry in spec.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#')) {
            let (id, material) = entry.split_once(':').ok_or_else(|| {
                Error::invalid("secret_keys", "each key is ID:BASE64 (make one with `quire keys generate`)")
            })?;
            let bytes = STANDARD
                .decode(material.trim())
                .map_err(|_| Error::invalid("secret_keys", format!("key '{id}' is not base64")))?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| Error::invalid("secret_keys", format!("key '{id}' must be 32 bytes (AES-256)")))?;
            if id.is_empty() || id.contains(':') || keys.iter().any(|(k, _)| k == id) {
                return Err(Error::invalid("secret_keys", format!("key id '{id}' is empty, repeated or contains ':'")));
            }
            keys.push((id.trim().to_string(), LessSafeKey::new(key)));
        }
        if keys.is_empty() {
            return Err(Error::invalid("secret_keys", "no key given"));
        }
        Ok(Keyring { keys })
    }

    /// A keyring with one random key that lives only in memory (for tests).
    pub fn ephemeral() -> Keyring {
        Keyring::parse(&generate_key()).expect("a generated key parses")
    }

    /// The key ids, current first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Whether a stored value is sealed (rather than legacy plaintext).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// Seals `plaintext` for the slot `slot` with the current key.
    pub fn seal(&self, slot: &str, plaintext: &str) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system random source works");
        let mut data = plaintext.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(slot.as_bytes()), &mut data)
            .expect("sealing with AES-256-GCM cannot fail for these sizes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// A stored value as plain text: opened when sealed, as it is when stored before it was
    /// (or a setting that holds no secret).
    pub fn open_or_plain(&self, slot: &str, value: &str) -> Result<String> {
        if Keyring::is_sealed(value) { self.open(slot, value) } else { Ok(value.to_string()) }
    }

    /// Opens a value sealed for `slot`. Says plainly which key is missing or wrong.
    pub fn open(&self, slot: &str, sealed: &str) -> Result<String> {
        let rest =
            sealed.strip_prefix(PREFIX).ok_or_else(|| Error::Internal(format!("the secret '{slot}' is not sealed")))?;
        let (id, b64) =
            rest.split_once(':').ok_or_else(|| Error::Internal(format!("the secret '{slot}' is damaged")))?;
        let Some((_, key)) = self.keys.iter().find(|(k, _)| k == id) else {
            return Err(Error::Unavailable(format!(
                "the secret '{slot}' was sealed with key '{id}', which is not configured; add it to QUIRE_SECRET_KEYS \
                 (or the data directory's secret-keys file)"
            )));
        };
        let mut data =
            URL_SAFE_NO_PAD.decode(b64).map_err(|_| Error::Internal(format!("the secret '{slot}' is damaged")))?;
        if data.len() < NONCE_LEN {
            return Err(Error::Internal(format!("the secret '{slot}' is damaged")));
        }
        let mut body = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data)
            .map_err(|_| Error::Internal(format!("the secret '{slot}' is damaged")))?;
        let plain = key.open_in_place(nonce, Aad::from(slot.as_bytes()), &mut body).map_err(|_| {
            Error::Unavailable(format!(
                "key '{id}' does not open the secret '{slot}': the configured key material is not the one it was sealed with"
            ))
        })?;
        String::from_utf8(plain.to_vec()).map_err(|_| Error::Internal(format!("the secret '{slot}' is damaged")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_bound_to_their_slot() {
        let ring = Keyring::ephemeral();
        let sealed = ring.seal("auth.jwt", "s3cret");
        assert!(Keyring::is_sealed(&sealed) && !sealed.contains("s3cret"));
        assert_eq!(ring.open("auth.jwt", &sealed).unwrap(), "s3cret");
        assert_ne!(ring.seal("auth.jwt", "s3cret"), sealed, "a fresh nonce every time");
        assert!(ring.open("other.slot", &sealed).is_err(), "moved to another slot, it does not open");
        let mut tampered = sealed.clone();
        tampered.pop();
        assert!(ring.open("auth.jwt", &tampered).is_err());
        assert_eq!(ring.open_or_plain("auth.jwt", &sealed).unwrap(), "s3cret");
        assert_eq!(ring.open_or_plain("auth.jwt", "plain").unwrap(), "plain", "plain text passes through");
        assert!(ring.open_or_plain("other.slot", &sealed).is_err());
    }

    #[test]
    fn missing_and_wrong_keys_are_named() {
        let a = Keyring::parse(&generate_key()).unwrap();
        let sealed = a.seal("slot", "x");
        let id = a.ids()[0].to_string();
        let other = Keyring::ephemeral();
        let missing = other.open("slot", &sealed).unwrap_err().to_string();
        assert!(missing.contains(&id) && missing.contains("not configured"), "{missing}");
        let impostor = Keyring::parse(&format!("{id}:{}", STANDARD.encode([7u8; 32]))).unwrap();
        let wrong = impostor.open("slot", &sealed).unwrap_err().to_string();
        assert!(wrong.contains("does not open"), "{wrong}");
    }

    #[test]
    fn several_keys_open_and_the_first_seals() {
        let old = generate_key();
        let new = generate_key();
        let before = Keyring::parse(&old).unwrap();
        let sealed_old = before.seal("s", "v");
        let both = Keyring::parse(&format!("{new}\n{old}")).unwrap();
        assert_eq!(both.open("s", &sealed_old).unwrap(), "v");
        let resealed = both.seal("s", "v");
        assert!(resealed.contains(both.ids()[0]));
        assert!(Keyring::parse("nonsense").is_err());
        assert!(Keyring::parse("k1:AAAA").is_err(), "too short for AES-256");
        assert!(Keyring::parse(&format!("{old},{old}")).is_err(), "repeated id");
    }
}
