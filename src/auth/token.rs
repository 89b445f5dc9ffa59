//! Signed, expiring access tokens (JWT, HS256 only), verified without a database hit.
//!
//! The verifier pins the algorithm (so `alg: none` and algorithm confusion are refused), checks
//! issuer, audience and expiry, refuses tokens whose `iat` or `nbf` lies in the future (beyond
//! [`LEEWAY_SECS`] of clock skew), and requires every claim it relies on. Whether the token was
//! revoked since (its `gen` below the user's) is the session's business
//! ([`crate::service::session`]), not the signature's.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::verified::VerifiedTokens;
use crate::domain::{Role, UserId};

const ISSUER: &str = "flashmart";
const AUDIENCE: &str = "flashmart-api";
/// Clock skew tolerated on `exp`, `nbf` and `iat` (seconds).
pub const LEEWAY_SECS: i64 = 5;

/// What an access token asserts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id, as a string (JWT convention).
    pub sub: String,
    /// The user's role at issue time; requests are authorised by it without a database read.
    pub role: Role,
    /// Who issued the token: `"flashmart"` in tokens we issue; verification refuses others.
    pub iss: String,
    /// Who the token is for: `"flashmart-api"` in tokens we issue; verification refuses others.
    pub aud: String,
    /// Issued at (Unix seconds); a token issued in the future is refused.
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Not valid before (Unix seconds); we never set it, but a token that has it is held to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The user's token generation at issue time; tokens below the current one are revoked
    /// (absent in tokens issued before revocation existed: generation 0).
    #[serde(default)]
    pub gen: i64,
}

/// What a valid token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user the token was issued to (its `sub` claim, always a positive id).
    pub user: UserId,
    /// The role the token grants, as recorded when it was issued.
    pub role: Role,
    /// The token generation it was issued at.
    pub gen: i64,
}

/// The keys and rules for issuing and verifying tokens, and the tokens verified lately.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
    verified: std::sync::Arc<VerifiedTokens>,
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
        validation.leeway = LEEWAY_SECS as u64;
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs: ttl_secs as i64,
            verified: std::sync::Arc::default(),
        }
    }

    /// Issues a token for a user at `now_secs`, of the user's token generation `gen`.
    pub fn issue(
        &self,
        user: UserId,
        role: Role,
        gen: i64,
        now_secs: i64,
    ) -> anyhow::Result<IssuedToken> {
        let claims = Claims {
            sub: user.0.to_string(),
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now_secs,
            exp: now_secs + self.ttl_secs,
            nbf: None,
            gen,
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

    /// Verifies a token at `now_secs` and returns what it says, or `None` if it is not valid.
    ///
    /// A token verified before is answered from memory until its expiry (see
    /// [`super::verified`]); `now_secs` must be the system clock, the one the signature check
    /// holds `exp` and `nbf` to.
    pub fn verify(&self, token: &str, now_secs: i64) -> Option<Verified> {
        if let Some(verified) = self.verified.get(token, now_secs) {
            return Some(verified);
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let claims = data.claims;
        if claims.iat > now_secs + LEEWAY_SECS || claims.gen < 0 {
            return None;
        }
        let id: i64 = claims.sub.parse().ok()?;
        let verified = (id > 0).then_some(Verified {
            user: UserId(id),
            role: claims.role,
            gen: claims.gen,
        })?;
        // jsonwebtoken refuses once exp < now − leeway; `nbf` and `iat` only grow truer.
        self.verified
            .keep(token, verified, claims.exp + LEEWAY_SECS, now_secs);
        Some(verified)
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
        let t = keys()
            .issue(UserId(42), Role::Admin, 3, now())
            .expect("issue");
        let verified = keys().verify(&t.token, now()).expect("valid");
        assert_eq!(
            (verified.user, verified.role, verified.gen),
            (UserId(42), Role::Admin, 3)
        );
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let old = keys()
            .issue(UserId(1), Role::User, 0, now() - 7200)
            .expect("issue");
        assert_eq!(keys().verify(&old.token, now()), None);
        let other = TokenKeys::new(&[8u8; 32], 3600).issue(UserId(1), Role::User, 0, now());
        assert_eq!(keys().verify(&other.expect("issue").token, now()), None);
    }

    #[test]
    fn tokens_from_the_future_are_refused_beyond_the_leeway() {
        let future = keys()
            .issue(UserId(1), Role::User, 0, now() + 600)
            .expect("issue");
        assert_eq!(keys().verify(&future.token, now()), None, "iat in 10 min");
        let skewed = keys()
            .issue(UserId(1), Role::User, 0, now() + 2)
            .expect("issue");
        assert!(keys().verify(&skewed.token, now()).is_some(), "2 s of skew");
        let mut claims = Claims {
            sub: "1".into(),
            role: Role::User,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now(),
            exp: now() + 600,
            nbf: Some(now() + 300),
            gen: 0,
        };
        let not_yet = keys().sign(&claims).expect("sign");
        assert_eq!(keys().verify(&not_yet, now()), None, "nbf in 5 min");
        claims.nbf = Some(now());
        let valid = keys().sign(&claims).expect("sign");
        assert!(keys().verify(&valid, now()).is_some());
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
        assert_eq!(keys().verify(&format!("{header}.{body}."), now()), None);
    }
}
