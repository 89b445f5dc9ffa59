//! User-related value types: ids, e-mail, password, display name and role.

use serde::{Deserialize, Serialize};

use super::field::FieldError;

/// A user's id (positive integer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// Role carried in the access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    /// A shopper.
    User,
    /// May do everything, including catalog and coupon administration.
    Admin,
}

impl Role {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Admin => "ADMIN",
        }
    }

    /// Parses the stored value; anything unknown is a plain user (least privilege).
    pub fn from_db(value: &str) -> Self {
        if value == "ADMIN" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// A syntactically valid e-mail address in its canonical form: printable ASCII only,
/// lower-cased, at most 254 characters.
///
/// The canonical form is the account's one identity: sign-up stores it, login looks it up
/// byte for byte (the column has a binary collation since migration 0008) and the login
/// limiter counts the account it resolves to. Anything outside printable ASCII is refused at
/// sign-up, because MySQL's `utf8mb4_unicode_ci` and a reader's eye treat many such strings
/// as "the same" address (a zero-width space, `é` for `e`, full-width `ｕ`), and an identity
/// that has several spellings gives each spelling its own limiter bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The canonical spelling of whatever a client typed: trimmed, ASCII letters lower-cased,
    /// nothing else changed (so a non-ASCII spelling never equals an ASCII address).
    pub fn canonical(raw: &str) -> String {
        raw.trim().to_ascii_lowercase()
    }

    /// Validates an e-mail address and returns it in canonical form.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = Self::canonical(raw);
        let bad = || {
            FieldError::new(
                "email",
                "must be a valid e-mail address of printable ASCII characters",
            )
        };
        if value.len() > 254 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        let (local, domain) = value.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && domain.len() <= 253;
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Self(value))
    }

    /// The canonical address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8 to 128 characters (the upper bound keeps hashing cost bounded).
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Validates the length rules.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars < 8 {
            return Err(FieldError::new("password", "must be at least 8 characters"));
        }
        if chars > 128 {
            return Err(FieldError::new(
                "password",
                "must be at most 128 characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: 1 to 100 characters after trimming, no control or bidi formatting
/// characters ([`super::text::is_displayable`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Validates a display name.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let chars = value.chars().count();
        if chars == 0 || chars > 100 || !super::text::is_displayable_text(value) {
            return Err(FieldError::new(
                "name",
                "must be 1-100 printable characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as validated (trimmed, within the length limit), for storage and display.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" A@Example.COM ").expect("ok").as_str(),
            "a@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.com",
            "a@.com",
            "a b@c.com",
            "a@b.com.",
            "a@@b.com",
            "u\u{200b}@example.com",
            "vict\u{ed}m@example.com",
            "\u{ff56}ictim@example.com",
            "a\u{202e}b@example.com",
            "caf\u{e9}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn password_length_is_bounded_both_ways() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn names_must_be_printable_and_short() {
        assert!(UserName::parse("  ").is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
        assert!(UserName::parse("admin\u{202E}nimda").is_err());
        assert!(UserName::parse(&"x".repeat(101)).is_err());
        assert_eq!(UserName::parse(" Kim ").expect("ok").as_str(), "Kim");
    }
}
