//! URLs that carry their own permission: an HMAC-SHA256 over what they name and when they
//! expire, so that an `<img>` tag, a download link or a CDN in front of Quire needs no
//! bearer token, and a link stops working at its expiry.

use aws_lc_rs::hmac;

/// Signs and checks asset URLs with one key (derived from the instance's secret, so every
/// process of a cluster agrees).
#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner")
    }
}

/// Why a signed URL was not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the link has expired: ask Quire for a new one")]
    Expired,
    #[error("the link's signature does not match what it names")]
    Invalid,
}

impl UrlSigner {
    /// A signer whose key is derived from `secret` for this one purpose.
    pub fn new(secret: &[u8]) -> Self {
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), b"quire asset urls v1");
        UrlSigner { key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()) }
    }

    fn message(subject: &str, expires: i64) -> String {
        format!("{subject}\n{expires}")
    }

    /// The signature (URL-safe hex) of `subject` (what the URL names, e.g. workspace, hash
    /// and variant) until `expires` (seconds since the epoch).
    pub fn sign(&self, subject: &str, expires: i64) -> String {
        let tag = hmac::sign(&self.key, Self::message(subject, expires).as_bytes());
        tag.as_ref()[..20].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks a signature at time `now` (seconds since the epoch), in constant time.
    pub fn verify(&self, subject: &str, expires: i64, signature: &str, now: i64) -> Result<(), SignatureError> {
        let expected = self.sign(subject, expires);
        let same = expected.len() == signature.len()
            && expected.bytes().zip(signature.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            return Err(SignatureError::Invalid);
        }
        if now >= expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_name_their_subject_and_expire() {
        let signer = UrlSigner::new(b"instance secret");
        let sig = signer.sign("ws_1/abc/small", 1_000);
        assert_eq!(sig.len(), 40);
        assert_eq!(signer.verify("ws_1/abc/small", 1_000, &sig, 999), Ok(()));
        assert_eq!(signer.verify("ws_1/abc/small", 1_000, &sig, 1_000), Err(SignatureError::Expired));
        assert_eq!(signer.verify("ws_1/abc/large", 1_000, &sig, 10), Err(SignatureError::Invalid));
        assert_eq!(signer.verify("ws_1/abc/small", 2_000, &sig, 10), Err(SignatureError::Invalid), "expiry is signed");
        assert_eq!(signer.verify("ws_2/abc/small", 1_000, &sig, 10), Err(SignatureError::Invalid));
        let other = UrlSigner::new(b"another instance");
        assert_eq!(other.verify("ws_1/abc/small", 1_000, &sig, 10), Err(SignatureError::Invalid));
    }
}
