//! `X-Flashmart-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signature header value for `body` at `t`.
pub fn sign(secret: &[u8], t: i64, body: &str) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

fn mac(secret: &[u8], t: i64, body: &str) -> Vec<u8> {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(format!("{t}.{body}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Verifies a header against `body`, refusing timestamps more than `tolerance_secs` from `now`.
pub fn verify(secret: &[u8], header: &str, body: &str, now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(given)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let header = sign(b"secret", 1_700_000_000, r#"{"a":1}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(b"secret", &header, r#"{"a":1}"#, 1_700_000_010, 300));
        assert!(!verify(
            b"secret",
            &header,
            r#"{"a":2}"#,
            1_700_000_010,
            300
        ));
        assert!(!verify(b"other", &header, r#"{"a":1}"#, 1_700_000_010, 300));
        assert!(!verify(
            b"secret",
            &header,
            r#"{"a":1}"#,
            1_700_001_000,
            300
        ));
        assert!(!verify(
            b"secret",
            "garbage",
            r#"{"a":1}"#,
            1_700_000_000,
            300
        ));
    }
}
