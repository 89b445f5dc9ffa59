//! "My page": a user's orders, newest first, with keyset pagination.
//!
//! MySQL is the source; an order changed a moment ago may not be there yet (or only in an older
//! state), so each page merges the user's recent orders from Redis, which win on conflict.

use base64::Engine;

use crate::cache::orders as hot;
use crate::domain::UserId;
use crate::error::{AppError, FieldError};
use crate::service::orders::Order;
use crate::state::AppState;
use crate::store;

/// A page of orders.
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<Order>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

const TAG: &str = "o1:";

fn encode(order: &Order) -> String {
    let raw = format!("{TAG}{}:{}", order.created_at_ms, order.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode(cursor: &str) -> Result<(i64, String), AppError> {
    let bad = || AppError::Validation(vec![FieldError::new("cursor", "is not a valid cursor")]);
    if cursor.len() > 128 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ms_text, id) = text
        .strip_prefix(TAG)
        .and_then(|t| t.split_once(':'))
        .ok_or_else(bad)?;
    let ms: i64 = ms_text.parse().map_err(|_| bad())?;
    let id_ok = id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    // only what encode makes: no sign or leading zeros in the time
    if ms < 0 || ms.to_string() != ms_text || !id_ok {
        return Err(bad());
    }
    Ok((ms, id.to_owned()))
}

fn newer_first(a: &Order, b: &Order) -> std::cmp::Ordering {
    (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id))
}

/// One page of a user's orders older than the cursor.
pub async fn page(
    state: &AppState,
    user: UserId,
    cursor: Option<&str>,
    limit: u32,
) -> Result<OrderPage, AppError> {
    let before = cursor.map(decode).transpose()?;
    let older_than = |o: &Order| match &before {
        Some((ms, id)) => (o.created_at_ms, &o.id) < (*ms, id),
        None => true,
    };
    let stored = store::orders::history_page(&state.db, user.0, before.clone(), limit + 1).await?;
    let mut merged: Vec<Order> = stored.into_iter().map(|s| s.order).collect();
    let recent = hot::recent(&state.cache, user.0).await?;
    for order in hot::read_many(&state.cache, &recent)
        .await?
        .into_iter()
        .flatten()
    {
        if order.user_id != user.0 || !older_than(&order) {
            continue;
        }
        merged.retain(|o| o.id != order.id);
        merged.push(order);
    }
    merged.sort_by(newer_first);
    let has_more = merged.len() > limit as usize;
    merged.truncate(limit as usize);
    let next_cursor = if has_more {
        merged.last().map(encode)
    } else {
        None
    };
    Ok(OrderPage {
        items: merged,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let order = Order {
            id: "0190a3f0-0000-7000-8000-000000000001".into(),
            user_id: 1,
            status: crate::events::OrderStatus::Paid,
            items: vec![],
            subtotal: 0,
            discount: 0,
            total: 0,
            user_coupon_id: None,
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: 0,
            paid_at_ms: None,
        };
        assert_eq!(
            decode(&encode(&order)).expect("valid"),
            (order.created_at_ms, order.id)
        );
        for bad in ["", "xyz", "bzE6MTow", "o1:1:abc"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
