//! Pricing an order before it is placed: the line rules, each line's price from the catalog,
//! the coupon's terms and discount. Nothing here holds stock or changes state, except granting a
//! coupon the user's bucket lacks (the repeated last step of the coupon saga).

use std::collections::HashSet;

use crate::cache::coupons as hot_coupons;
use crate::domain::UserId;
use crate::error::{AppError, FieldError};
use crate::events::{CouponRefusal, OrderLine};
use crate::service::catalog;
use crate::service::discount::Discount;
use crate::state::AppState;
use crate::store;

/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Most units of one product in one order.
pub const MAX_QUANTITY: i64 = 100;

/// A requested line: (productId, quantity).
pub type RequestedLine = (i64, i64);

/// Checks the lines: 1–50, no duplicate product, quantity 1–100, positive ids.
pub fn validate_lines(lines: &[RequestedLine]) -> Result<(), AppError> {
    let mut errors = Vec::new();
    if lines.is_empty() || lines.len() > MAX_LINES {
        errors.push(FieldError::new("items", "must hold 1-50 lines"));
    }
    let mut seen = HashSet::new();
    for (i, (product_id, quantity)) in lines.iter().enumerate() {
        if *product_id <= 0 {
            errors.push(FieldError::new(
                format!("items[{i}].productId"),
                "must be a positive id",
            ));
        } else if !seen.insert(*product_id) {
            errors.push(FieldError::new(
                format!("items[{i}].productId"),
                "appears twice",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                "must be 1-100",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Prices the lines from the catalog (the pricing cache, see [`catalog::terms`]); an unknown
/// product → `PRODUCT_NOT_FOUND`.
async fn price(state: &AppState, lines: &[RequestedLine]) -> Result<Vec<OrderLine>, AppError> {
    let ids: Vec<i64> = lines.iter().map(|(id, _)| *id).collect();
    let terms = catalog::terms(state, &ids).await?;
    lines
        .iter()
        .zip(terms)
        .map(|((product_id, quantity), terms)| {
            let terms = terms.ok_or(AppError::ProductNotFound)?;
            Ok(OrderLine {
                product_id: *product_id,
                line_total: terms.price * quantity,
                name: terms.name,
                unit_price: terms.price,
                quantity: *quantity,
            })
        })
        .collect()
}

/// The coupon terms for an order: (userCouponId, couponId, minimum) and the discount.
async fn coupon_terms(
    state: &AppState,
    user: UserId,
    user_coupon_id: i64,
    subtotal: i64,
) -> Result<((i64, i64, i64), i64), AppError> {
    let owner = hot_coupons::owner_of(&state.cache, user.0, user_coupon_id)
        .await?
        .ok_or(AppError::InvalidCoupon(CouponRefusal::NotFound))?;
    if owner.user_id != user.0 {
        return Err(AppError::InvalidCoupon(CouponRefusal::NotYours));
    }
    let coupon_id = owner.coupon_id;
    if !owner.granted {
        repair_grant(state, user, coupon_id).await?;
    }
    let campaign = store::coupons::find(&state.db, coupon_id)
        .await?
        .ok_or(AppError::InvalidCoupon(CouponRefusal::NotFound))?;
    let terms = Discount::from_campaign(
        &campaign.discount_type,
        campaign.discount_value,
        campaign.max_discount,
    )
    .ok_or(AppError::InvalidCoupon(CouponRefusal::NotFound))?;
    Ok((
        (user_coupon_id, coupon_id, campaign.min_order_amount),
        terms.on(subtotal),
    ))
}

/// The grant step of the coupon saga, repeated: a coupon issued to the user whose grant a
/// crash cut off is put into the user's bucket now (nothing changes if it is there).
async fn repair_grant(state: &AppState, user: UserId, coupon_id: i64) -> Result<(), AppError> {
    if let Some(coupon) = hot_coupons::issued_to(&state.cache, coupon_id, user.0).await? {
        if hot_coupons::grant_all(&state.cache, &[coupon]).await?[0] {
            tracing::info!(
                coupon.user_coupon_id,
                "granted a coupon the user's bucket lacked"
            );
        }
    }
    Ok(())
}

/// Lines priced and a coupon's discount computed: the part of an order both [`quote`] and
/// [`crate::service::orders::create`] need, so the figures a shopper confirms are the ones the
/// order gets.
pub(crate) struct Priced {
    /// The lines with their names and prices as the catalog holds them now.
    pub(crate) items: Vec<OrderLine>,
    /// Sum of the line totals, before the discount.
    pub(crate) subtotal: i64,
    /// The coupon to reserve: (userCouponId, couponId, campaign minimum order amount).
    pub(crate) coupon: Option<(i64, i64, i64)>,
    /// Won the coupon takes off the subtotal (0 without one).
    pub(crate) discount: i64,
}

/// Validates and prices the lines, and the coupon's discount on their subtotal.
pub(crate) async fn priced(
    state: &AppState,
    user: UserId,
    lines: &[RequestedLine],
    user_coupon_id: Option<i64>,
) -> Result<Priced, AppError> {
    validate_lines(lines)?;
    let items = price(state, lines).await?;
    let subtotal: i64 = items.iter().map(|l| l.line_total).sum();
    let (coupon, discount) = match user_coupon_id {
        Some(id) => {
            let (coupon, discount) = coupon_terms(state, user, id, subtotal).await?;
            (Some(coupon), discount)
        }
        None => (None, 0),
    };
    Ok(Priced {
        items,
        subtotal,
        coupon,
        discount,
    })
}

/// What an order would cost now, before it is placed (the storefront's review step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Priced lines.
    pub items: Vec<OrderLine>,
    /// Sum of the lines.
    pub subtotal: i64,
    /// The coupon's discount on the subtotal (0 without a coupon).
    pub discount: i64,
    /// subtotal − discount.
    pub total: i64,
    /// The coupon's minimum order amount, when a coupon is chosen (checked when placing).
    pub coupon_minimum: Option<i64>,
}

/// Prices lines and a coupon with the same rules as [`crate::service::orders::create`],
/// reserving nothing. Stock and the coupon's status are decided only when the order is placed.
pub async fn quote(
    state: &AppState,
    user: UserId,
    lines: &[RequestedLine],
    user_coupon_id: Option<i64>,
) -> Result<Quote, AppError> {
    let priced = priced(state, user, lines, user_coupon_id).await?;
    Ok(Quote {
        total: priced.subtotal - priced.discount,
        coupon_minimum: priced.coupon.map(|(_, _, minimum)| minimum),
        items: priced.items,
        subtotal: priced.subtotal,
        discount: priced.discount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_rules() {
        assert!(validate_lines(&[(1, 1)]).is_ok());
        assert!(validate_lines(&[]).is_err());
        assert!(
            validate_lines(&[(1, 1), (1, 2)]).is_err(),
            "duplicate product"
        );
        assert!(validate_lines(&[(1, 0)]).is_err());
        assert!(validate_lines(&[(1, 101)]).is_err());
        assert!(validate_lines(&[(0, 1)]).is_err());
        let fifty: Vec<RequestedLine> = (1..=50).map(|i| (i, 1)).collect();
        assert!(validate_lines(&fifty).is_ok());
        let fifty_one: Vec<RequestedLine> = (1..=51).map(|i| (i, 1)).collect();
        assert!(validate_lines(&fifty_one).is_err());
    }
}
