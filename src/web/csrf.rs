//! CSRF tokens for every storefront form: `base64url(HMAC-SHA256(key, binding))`, where the
//! binding is the session cookie (signed-in forms) or the visitor cookie (log-in and sign-up).
//!
//! Nothing is stored: a token is valid exactly while the cookie it is bound to is, so another
//! site can neither read nor guess one, and a token taken from one session is useless in
//! another. The key is derived from `JWT_SECRET`, so every instance accepts the others' tokens.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Name of the hidden form field that carries the token.
pub const FIELD: &str = "csrf";

/// The key tokens are signed with.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl CsrfKey {
    /// Derives the key from the token signing secret (a separate key for a separate purpose).
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"flashmart storefront csrf v1");
        Self(mac.finalize().into_bytes().into())
    }

    /// The token for a binding (`session:…` or `visitor:…`).
    pub fn token(&self, binding: &str) -> String {
        let mac = self.mac(binding);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the token of `binding` (constant-time comparison).
    pub fn verify(&self, binding: &str, given: &str) -> bool {
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        self.mac(binding).verify_slice(&bytes).is_ok()
    }

    fn mac(&self, binding: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(binding.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_own_binding_and_key() {
        let key = CsrfKey::derive(b"0123456789abcdef0123456789abcdef");
        let token = key.token("session:abc");
        assert!(key.verify("session:abc", &token));
        assert!(!key.verify("session:abd", &token));
        assert!(!key.verify("visitor:abc", &token));
        assert!(!key.verify("session:abc", ""));
        assert!(!key.verify("session:abc", "not base64 !"));
        let other = CsrfKey::derive(b"another-secret-another-secret-xx");
        assert!(!other.verify("session:abc", &token));
    }
}
