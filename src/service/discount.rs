//! Coupon discount arithmetic, in integers.
//!
//! Rounding rule: a percent discount is `floor(subtotal × percent / 100)` won (fractions of a
//! won go to the shop), then capped by `maxDiscount`. Every discount is capped by the subtotal,
//! so a total is never negative.

/// A campaign's discount terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// A fixed number of won off.
    Fixed {
        /// Won off.
        amount: i64,
    },
    /// A percentage off, optionally capped.
    Percent {
        /// 1–100.
        percent: i64,
        /// Largest discount in won.
        cap: Option<i64>,
    },
}

impl Discount {
    /// Builds terms from the stored campaign fields; unknown types give no discount.
    pub fn from_campaign(kind: &str, value: i64, cap: Option<i64>) -> Option<Self> {
        match kind {
            "FIXED" => Some(Self::Fixed { amount: value }),
            "PERCENT" => Some(Self::Percent {
                percent: value,
                cap,
            }),
            _ => None,
        }
    }

    /// The discount on `subtotal` won: never negative, never above the subtotal.
    pub fn on(self, subtotal: i64) -> i64 {
        let subtotal = subtotal.max(0);
        let raw = match self {
            Self::Fixed { amount } => amount,
            Self::Percent { percent, cap } => {
                let off = (i128::from(subtotal) * i128::from(percent.clamp(0, 100)) / 100) as i64;
                cap.map_or(off, |c| off.min(c))
            }
        };
        raw.clamp(0, subtotal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discount_table() {
        let cases = [
            (Discount::Fixed { amount: 5_000 }, 30_000, 5_000),
            (Discount::Fixed { amount: 5_000 }, 3_000, 3_000),
            (
                Discount::Percent {
                    percent: 10,
                    cap: None,
                },
                30_000,
                3_000,
            ),
            (
                Discount::Percent {
                    percent: 10,
                    cap: None,
                },
                12_345,
                1_234,
            ),
            (
                Discount::Percent {
                    percent: 33,
                    cap: None,
                },
                999,
                329,
            ),
            (
                Discount::Percent {
                    percent: 10,
                    cap: Some(2_000),
                },
                30_000,
                2_000,
            ),
            (
                Discount::Percent {
                    percent: 100,
                    cap: None,
                },
                7_777,
                7_777,
            ),
            (
                Discount::Percent {
                    percent: 50,
                    cap: Some(10_000),
                },
                0,
                0,
            ),
            (
                Discount::Percent {
                    percent: 10,
                    cap: None,
                },
                5_000_000_000_000,
                500_000_000_000,
            ),
        ];
        for (terms, subtotal, expected) in cases {
            assert_eq!(terms.on(subtotal), expected, "{terms:?} on {subtotal}");
        }
    }

    #[test]
    fn unknown_kinds_give_no_terms() {
        assert_eq!(Discount::from_campaign("BOGO", 1, None), None);
        assert_eq!(
            Discount::from_campaign("PERCENT", 10, Some(5)),
            Some(Discount::Percent {
                percent: 10,
                cap: Some(5)
            })
        );
    }
}
