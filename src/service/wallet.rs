//! Wallet: charge a prepaid balance and read it. Redis decides (charge.lua); the settlement
//! worker writes the `balance.charged` event into the MySQL ledger.

use serde_json::Value;

use crate::cache::wallet::{self as hot, ChargeCall, ChargeOutcome};
use crate::domain::UserId;
use crate::error::AppError;
use crate::state::AppState;
use crate::store;

/// Largest single charge (won).
pub const MAX_CHARGE_WON: i64 = 10_000_000;
/// Largest balance a user may hold (won).
pub const MAX_BALANCE_WON: i64 = 1_000_000_000;

/// A completed (or replayed) charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    /// Whose balance.
    pub user_id: UserId,
    /// Balance after the charge.
    pub balance: i64,
    /// Won added.
    pub charged_amount: i64,
}

/// Validates a JSON amount: an integer from 1 to [`MAX_CHARGE_WON`]; anything else (float,
/// string, missing, huge) → `INVALID_AMOUNT`.
pub fn parse_amount(value: Option<&Value>) -> Result<i64, AppError> {
    let invalid = |why: &str| AppError::InvalidAmount(why.to_owned());
    let Some(Value::Number(number)) = value else {
        return Err(invalid("amount must be an integer number of won"));
    };
    let Some(amount) = number.as_i64() else {
        return Err(if number.is_f64() {
            invalid("amount must be an integer number of won")
        } else {
            invalid("amount must be at most 10,000,000 won per charge")
        });
    };
    if amount <= 0 {
        return Err(invalid("amount must be greater than zero"));
    }
    if amount > MAX_CHARGE_WON {
        return Err(invalid("amount must be at most 10,000,000 won per charge"));
    }
    Ok(amount)
}

/// Charges `amount` won once per idempotency key (a fresh key per request when none is given,
/// so a re-sent script call can never charge twice).
pub async fn charge(
    state: &AppState,
    user: UserId,
    amount: i64,
    idempotency_key: Option<String>,
) -> Result<Charged, AppError> {
    let key = idempotency_key.unwrap_or_else(|| format!("auto-{}", uuid::Uuid::new_v4()));
    let event_id = uuid::Uuid::now_v7().to_string();
    let call = ChargeCall {
        user_id: user.0,
        amount,
        max_balance: MAX_BALANCE_WON,
        idempotency_key: &key,
        event_id: &event_id,
        now_ms: state.clock.now_ms(),
    };
    let mut outcome = hot::charge(&state.cache, &call).await?;
    if outcome == ChargeOutcome::NotLoaded {
        load_balance(state, user).await?;
        outcome = hot::charge(&state.cache, &call).await?;
    }
    let result = match outcome {
        ChargeOutcome::Charged { balance } | ChargeOutcome::Replayed { balance } => Ok(Charged {
            user_id: user,
            balance,
            charged_amount: amount,
        }),
        ChargeOutcome::OverLimit { .. } => Err(AppError::InvalidAmount(
            "the balance would exceed 1,000,000,000 won".into(),
        )),
        ChargeOutcome::KeyReused => Err(AppError::IdempotencyKeyReused),
        ChargeOutcome::NotLoaded => Err(AppError::Internal(anyhow::anyhow!(
            "balance of user {} still not in Redis after loading",
            user.0
        ))),
    };
    metrics::counter!("wallet_charges_total", "result" => charge_label(&outcome)).increment(1);
    result
}

fn charge_label(outcome: &ChargeOutcome) -> &'static str {
    match outcome {
        ChargeOutcome::Charged { .. } => "charged",
        ChargeOutcome::Replayed { .. } => "replayed",
        ChargeOutcome::OverLimit { .. } => "over_limit",
        ChargeOutcome::KeyReused => "key_reused",
        ChargeOutcome::NotLoaded => "not_loaded",
    }
}

/// A user's current balance (Redis's view, which includes charges not yet in MySQL).
pub async fn balance(state: &AppState, user: UserId) -> Result<i64, AppError> {
    if let Some(balance) = hot::balance(&state.cache, user.0).await? {
        return Ok(balance);
    }
    load_balance(state, user).await?;
    hot::balance(&state.cache, user.0)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("balance vanished after loading")))
}

/// Loads a user's balance from the MySQL ledger into Redis if Redis has none; a user that does
/// not exist → `USER_NOT_FOUND`.
async fn load_balance(state: &AppState, user: UserId) -> Result<(), AppError> {
    if !store::users::exists(&state.db, user).await? {
        return Err(AppError::UserNotFound);
    }
    let stored =
        store::ledger::account_balance(&state.db, &store::ledger::user_account(user.0)).await?;
    hot::init_if_missing(&state.cache, user.0, stored).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_must_be_positive_integers_within_the_limit() {
        assert_eq!(parse_amount(Some(&json!(1))).expect("ok"), 1);
        assert_eq!(
            parse_amount(Some(&json!(10_000_000))).expect("ok"),
            10_000_000
        );
        let bad = [
            json!(0),
            json!(-5),
            json!(1.5),
            json!(1.0),
            json!("100"),
            json!(null),
            json!(10_000_001),
            json!(u64::MAX),
            json!(1e30),
            json!([1]),
        ];
        for value in bad {
            assert!(
                matches!(parse_amount(Some(&value)), Err(AppError::InvalidAmount(_))),
                "{value}"
            );
        }
        assert!(matches!(
            parse_amount(None),
            Err(AppError::InvalidAmount(_))
        ));
    }
}
