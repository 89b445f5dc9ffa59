//! The shop: catalogue with price and stock, the top-5 popular products, the order form
//! (`GET /`), its review with subtotal, discount and total (`GET /cart`, priced by
//! `orders::quote`) and placing the order (`POST /orders`, `orders::create`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::form::CsrfForm;
use super::layout::{self, csrf_field, key_field, won, Nav};
use super::session::SignedIn;
use crate::error::{AppError, FieldError};
use crate::http::extract::{AppQuery, IdempotencyKey};
use crate::service::catalog::{self, Product};
use crate::service::orders::{self, RequestedLine};
use crate::service::{coupons, popular};
use crate::state::AppState;

/// Most form fields read from one cart (a catalogue page holds at most 100 products).
const MAX_CART_FIELDS: usize = 200;

/// What the order form asks for: lines, an optional coupon, the form's idempotency key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cart {
    /// (productId, quantity) with quantity > 0, in form order.
    pub lines: Vec<RequestedLine>,
    /// The chosen coupon.
    pub coupon: Option<i64>,
    /// The `key` field, when the form has one.
    pub key: Option<String>,
    /// The catalogue page the form came from.
    pub cursor: Option<String>,
}

/// Reads `qty-{productId}`, `coupon`, `key` and `cursor` fields; blank or 0 quantities are
/// skipped, the order rules themselves are `orders::validate_lines`'.
pub fn parse_cart(pairs: &[(String, String)]) -> Result<Cart, AppError> {
    let mut cart = Cart::default();
    let mut errors = Vec::new();
    for (name, value) in pairs.iter().take(MAX_CART_FIELDS) {
        let value = value.trim();
        if let Some(id) = name.strip_prefix("qty-") {
            if value.is_empty() || value == "0" {
                continue;
            }
            match (id.parse::<i64>(), value.parse::<i64>()) {
                (Ok(id), Ok(quantity)) if id > 0 && quantity > 0 => cart.lines.push((id, quantity)),
                _ => errors.push(FieldError::new(name, "must be a whole number of units")),
            }
        } else if name == "coupon" && !value.is_empty() {
            match value.parse::<i64>() {
                Ok(id) if id > 0 => cart.coupon = Some(id),
                _ => errors.push(FieldError::new("coupon", "is not one of your coupons")),
            }
        } else if name == "key" {
            cart.key = Some(IdempotencyKey::parse("key", value.as_bytes())?);
        } else if name == "cursor" && !value.is_empty() {
            cart.cursor = Some(value.to_owned());
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if cart.lines.is_empty() {
        return Err(AppError::Validation(vec![FieldError::new(
            "items",
            "choose at least one product",
        )]));
    }
    Ok(cart)
}

/// `GET /`: popular products, the catalogue as an order form, your available coupons.
pub async fn catalogue(
    State(state): State<AppState>,
    viewer: SignedIn,
    AppQuery(pairs): AppQuery<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let cursor = pairs
        .iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let page = catalog::list(&state, cursor, catalog::MAX_PAGE_SIZE).await?;
    let ranking = popular::ranking(&state).await?;
    let held = coupons::held(&state, viewer.user.id).await?;
    let available: Vec<_> = held.iter().filter(|c| c.status == "AVAILABLE").collect();
    let chosen_coupon = pairs
        .iter()
        .find(|(k, _)| k == "coupon")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let body = html! {
        h1 { "Shop" }
        section aria-labelledby="popular-title" {
            h2 #popular-title { "Popular now" }
            @if ranking.items.is_empty() {
                p.muted { "Nothing sold in the last 72 hours yet." }
            } @else {
                ol.popular {
                    @for item in &ranking.items {
                        li {
                            span.name { (item.product.name) }
                            " " span.price { (won(item.product.price)) }
                            " " span.muted { (item.sold) " sold" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="catalogue-title" {
            h2 #catalogue-title { "Catalogue" }
            @if page.items.is_empty() {
                p.muted { "No products available." }
            } @else {
                form method="get" action="/cart" {
                    @if let Some(cursor) = cursor {
                        input type="hidden" name="cursor" value=(cursor);
                    }
                    ul.products {
                        @for product in &page.items { (product_card(product, &pairs)) }
                    }
                    div.order-bar {
                        label for="coupon" { "Coupon" }
                        select #coupon name="coupon" {
                            option value="" { "No coupon" }
                            @for coupon in &available {
                                option value=(coupon.user_coupon_id)
                                    selected[chosen_coupon == Some(coupon.user_coupon_id)] {
                                    (coupon.name) " (#" (coupon.user_coupon_id) ")"
                                }
                            }
                        }
                        button type="submit" { "Review order" }
                    }
                }
                @if let Some(next) = &page.next_cursor {
                    p { a href={ "/?cursor=" (next) } { "More products" } }
                }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Shop", Nav::SignedIn(&viewer), body),
    ))
}

fn product_card(product: &Product, previous: &[(String, String)]) -> Markup {
    let field = format!("qty-{}", product.id);
    let chosen = previous
        .iter()
        .find(|(k, _)| *k == field)
        .map(|(_, v)| v.as_str())
        .unwrap_or("0");
    html! {
        li.card data-product-id=(product.id) {
            h3.name { (product.name) }
            p {
                span.price { (won(product.price)) }
                " · "
                @if product.stock > 0 {
                    span.stock { (product.stock) " in stock" }
                } @else {
                    span.stock.out { "Sold out" }
                }
            }
            label for=(field) { "Quantity" span.visually-hidden { " of " (product.name) } }
            input id=(field) type="number" name=(field) value=(chosen) min="0"
                max=(product.stock.clamp(0, orders::MAX_QUANTITY)) inputmode="numeric"
                disabled[product.stock <= 0];
        }
    }
}

/// `GET /cart`: the order priced with the order rules, with a confirm button.
pub async fn review(
    State(state): State<AppState>,
    viewer: SignedIn,
    AppQuery(pairs): AppQuery<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let cart = parse_cart(&pairs)?;
    let quote = orders::quote(&state, viewer.user.id, &cart.lines, cart.coupon).await?;
    let mut back = String::from("/?");
    for (id, quantity) in &cart.lines {
        back.push_str(&format!("qty-{id}={quantity}&"));
    }
    if let Some(coupon) = cart.coupon {
        back.push_str(&format!("coupon={coupon}&"));
    }
    if let Some(cursor) = &cart.cursor {
        back.push_str(&format!("cursor={cursor}"));
    }
    let body = html! {
        h1 { "Review your order" }
        table.lines {
            caption.visually-hidden { "Order lines" }
            thead { tr { th scope="col" { "Product" } th.num scope="col" { "Unit price" }
                th.num scope="col" { "Quantity" } th.num scope="col" { "Line total" } } }
            tbody {
                @for line in &quote.items {
                    tr {
                        td { (line.name) }
                        td.num { (won(line.unit_price)) }
                        td.num { (line.quantity) }
                        td.num { (won(line.line_total)) }
                    }
                }
            }
        }
        (totals(quote.subtotal, quote.discount, quote.total))
        @if let Some(minimum) = quote.coupon_minimum.filter(|m| *m > 0) {
            p.muted { "This coupon applies to orders of " (won(minimum)) " or more." }
        }
        p.muted { "Placing the order reserves the products for you until you pay." }
        form method="post" action="/orders" {
            (csrf_field(&viewer.csrf))
            (key_field())
            @for (id, quantity) in &cart.lines {
                input type="hidden" name={ "qty-" (id) } value=(quantity);
            }
            @if let Some(coupon) = cart.coupon {
                input type="hidden" name="coupon" value=(coupon);
            }
            p.actions {
                button type="submit" { "Place order" }
                a href=(back) { "Change" }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Review order", Nav::SignedIn(&viewer), body),
    ))
}

/// Subtotal, discount and total as a definition list (shared by review and order pages).
pub fn totals(subtotal: i64, discount: i64, total: i64) -> Markup {
    html! {
        dl.totals {
            dt { "Subtotal" } dd.subtotal { (won(subtotal)) }
            dt { "Discount" } dd.discount { (won(-discount)) }
            dt { "Total" } dd.total { (won(total)) }
        }
    }
}

/// `POST /orders`: places the order (once per form, by its key) and shows it.
pub async fn place(
    State(state): State<AppState>,
    viewer: SignedIn,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let cart = parse_cart(&pairs)?;
    let order = orders::create(&state, viewer.user.id, &cart.lines, cart.coupon, cart.key).await?;
    Ok(layout::see_other(&format!("/orders/{}", order.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn carts_keep_chosen_lines_and_refuse_garbage() {
        let cart = parse_cart(&pairs(&[
            ("qty-1", "2"),
            ("qty-2", "0"),
            ("qty-3", ""),
            ("qty-4", " 1 "),
            ("coupon", "7"),
        ]))
        .expect("valid");
        assert_eq!(cart.lines, vec![(1, 2), (4, 1)]);
        assert_eq!(cart.coupon, Some(7));
        assert!(
            parse_cart(&pairs(&[("qty-1", "0")])).is_err(),
            "nothing chosen"
        );
        assert!(parse_cart(&pairs(&[("qty-1", "1.5")])).is_err());
        assert!(parse_cart(&pairs(&[("qty-1", "-1")])).is_err());
        assert!(parse_cart(&pairs(&[("qty-x", "1")])).is_err());
        assert!(parse_cart(&pairs(&[("qty-1", "1"), ("coupon", "abc")])).is_err());
        assert!(parse_cart(&pairs(&[("qty-1", "1"), ("key", "")])).is_err());
    }
}
