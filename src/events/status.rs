//! The words shared by Lua, Rust and MySQL for an order's and a coupon's state, and for why a
//! coupon cannot be used. One enum each, so no code matches these words as strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A word that is not one of an enum's values (a damaged hash or event: fail loudly).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}")]
pub struct UnknownWord {
    /// Which vocabulary was expected.
    pub kind: &'static str,
    /// The text that was read instead (from a Redis hash, an event or MySQL), kept for the error.
    pub word: String,
}

macro_rules! words {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            /// The word as Lua scripts, events and MySQL spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<Self, Self::Err> {
                match word {
                    $($word => Ok(Self::$variant),)+
                    other => Err(UnknownWord { kind: $kind, word: other.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// Where an order is in its life: created PENDING, then exactly one of the three ends.
    OrderStatus, "order status" {
        /// Reserved, waiting for payment until its deadline.
        Pending => "PENDING",
        /// Paid: stock sold, money taken.
        Paid => "PAID",
        /// Its deadline passed unpaid; stock and coupon were released.
        Expired => "EXPIRED",
        /// Its owner cancelled it before the deadline; stock and coupon were released.
        Cancelled => "CANCELLED",
    }
}

words! {
    /// Where an issued coupon is (its expiry is computed by readers, not stored).
    CouponStatus, "coupon status" {
        /// Held by its user, usable on an order.
        Available => "AVAILABLE",
        /// Held by a PENDING order; back to AVAILABLE if that order ends unpaid.
        Reserved => "RESERVED",
        /// Spent on a paid order.
        Used => "USED",
    }
}

words! {
    /// Why a coupon cannot be used on an order (the problem's stable reason).
    CouponRefusal, "coupon refusal" {
        /// No coupon has that id.
        NotFound => "NOT_FOUND",
        /// The coupon belongs to another user.
        NotYours => "NOT_YOURS",
        /// Reserved by another order or already used.
        NotAvailable => "NOT_AVAILABLE",
        /// Past its expiry.
        Expired => "EXPIRED",
        /// The order's subtotal is below the campaign's minimum.
        BelowMinimum => "BELOW_MINIMUM",
    }
}

impl OrderStatus {
    /// Whether the order has ended (paid, expired or cancelled).
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_fail() {
        for status in [
            OrderStatus::Pending,
            OrderStatus::Paid,
            OrderStatus::Expired,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
            let json = serde_json::to_string(&status).expect("json");
            assert_eq!(json, format!("\"{status}\""));
        }
        assert_eq!("USED".parse::<CouponStatus>(), Ok(CouponStatus::Used));
        assert!("used".parse::<CouponStatus>().is_err());
        assert!("".parse::<OrderStatus>().is_err());
        assert_eq!(CouponRefusal::BelowMinimum.as_str(), "BELOW_MINIMUM");
    }
}
