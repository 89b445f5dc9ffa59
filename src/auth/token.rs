//! Signed, expiring access tokens (JWT, HS256 only), verified without a database hit.
//!
//! The verifier pins the algorithm (so `alg: none` and algorithm confusion are refused), checks
//! issuer, audience and expiry, and requires every claim it relies on.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{Role, UserId};

const ISSUER: &str = "flashmart";
const AUDIENCE: &str = "flashmart-api";

/// What an access token asserts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, as a string (JWT convention).
    pub sub: String,
    /// The user's role.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

/// The keys and rules for issuing and verifying tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

/// An issued token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

impl TokenKeys {
    /// Builds keys from the shared secret; `ttl_secs` is the access token lifetime.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs: ttl_secs as i64,
        }
    }

    /// Issues a token for a user at `now_secs`.
    pub fn issue(&self, user: UserId, role: Role, now_secs: i64) -> anyhow::Result<IssuedToken> {
        let claims = Claims {
            sub: user.0.to_string(),
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now_secs,
            exp: now_secs + self.ttl_secs,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_secs,
        })
    }

    /// Signs arbitrary claims; tests use it to forge expired or foreign tokens.
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        Ok(encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Verifies a token and returns the user and role it names, or `None` if it is not valid.
    pub fn verify(&self, token: &str) -> Option<(UserId, Role)> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let id: i64 = data.claims.sub.parse().ok()?;
        (id > 0).then_some((UserId(id), data.claims.role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], 3600)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn an_issued_token_verifies_to_its_user() {
        let t = keys().issue(UserId(42), Role::Admin, now()).expect("issue");
        assert_eq!(keys().verify(&t.token), Some((UserId(42), Role::Admin)));
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let old = keys()
            .issue(UserId(1), Role::User, now() - 7200)
            .expect("issue");
        assert_eq!(keys().verify(&old.token), None);
        let other = TokenKeys::new(&[8u8; 32], 3600).issue(UserId(1), Role::User, now());
        assert_eq!(keys().verify(&other.expect("issue").token), None);
    }

    #[test]
    fn alg_none_is_refused() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(format!(
            r#"{{"sub":"1","role":"ADMIN","iss":"flashmart","aud":"flashmart-api","iat":{},"exp":{}}}"#,
            now(),
            now() + 600
        ));
        assert_eq!(keys().verify(&format!("{header}.{body}.")), None);
    }
}
