//! Money as an integer number of won (KRW has no minor unit); never a float.

use serde::{Deserialize, Serialize};

/// An amount of won. Signed so ledger movements can be expressed; API inputs are checked > 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Won(pub i64);

impl Won {
    /// The amount in won.
    pub fn amount(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Won {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} won", self.0)
    }
}
