//! Catalog routes: `GET /api/v1/products`, `GET /api/v1/products/{productId}` and the admin
//! routes `POST /api/v1/admin/products`, `PATCH /api/v1/admin/products/{productId}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AppJson, AppPath, AppQuery, AuthUser, IdempotencyKey};
use crate::error::{AppError, FieldError};
use crate::service::catalog::{self, Product, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::service::catalog_admin;
use crate::state::AppState;

/// Highest unit price accepted (won).
pub const MAX_PRICE: i64 = 1_000_000_000;
/// Largest stock change in one request.
pub const MAX_STOCK_CHANGE: i64 = 1_000_000;

/// A product as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    /// The product's id; use it as `productId` in product routes and order lines.
    pub id: i64,
    /// Display name, as the administrator entered it.
    pub name: String,
    /// Current price of one unit in won; an order created now is priced at it.
    pub price: i64,
    /// Units that can be ordered now.
    pub stock: i64,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            id: p.id,
            name: p.name,
            price: p.price,
            stock: p.stock,
        }
    }
}

/// A page of products.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPageView {
    /// Products in id order.
    pub items: Vec<ProductView>,
    /// Cursor for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Present when the catalog is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

/// Paging parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
}

/// Validates a page size.
pub fn page_size(limit: Option<u32>) -> Result<u32, AppError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(AppError::Validation(vec![FieldError::new(
            "limit",
            "must be 1-100",
        )])),
    }
}

/// Lists products with their live availability.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", operation_id = "listProducts", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ProductPageView), (status = 400), (status = 401)))]
pub async fn list(
    State(state): State<AppState>,
    _user: AuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<Json<ProductPageView>, AppError> {
    let limit = page_size(query.limit)?;
    let page = catalog::list(&state, query.cursor.as_deref(), limit).await?;
    let empty = page.items.is_empty() && query.cursor.is_none();
    Ok(Json(ProductPageView {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        message: empty.then_some("no products available"),
    }))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{productId}", tag = "catalog",
    operation_id = "getProduct",
    params(("productId" = i64, Path, minimum = 1, maximum = 4294967295.0, description = "Product id")), security(("bearer" = [])),
    responses((status = 200, body = ProductView), (status = 401), (status = 404)))]
pub async fn get_one(
    State(state): State<AppState>,
    _user: AuthUser,
    AppPath(product_id): AppPath<u32>,
) -> Result<Json<ProductView>, AppError> {
    Ok(Json(
        catalog::get(&state, i64::from(product_id)).await?.into(),
    ))
}

/// New product body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateProductRequest {
    /// 1–200 characters.
    pub name: String,
    /// 0–1,000,000,000 won.
    pub price: i64,
    /// Initial units, 0–1,000,000.
    pub stock: i64,
}

/// Product change body; every field optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateProductRequest {
    /// Name to replace the current one, 1–200 characters; omitted or null keeps the name.
    pub name: Option<String>,
    /// Unit price to replace the current one, 0–1,000,000,000 won; omitted or null keeps it.
    /// Orders already created keep the price they were made at.
    pub price: Option<i64>,
    /// Units to add, 1–1,000,000.
    pub add_stock: Option<i64>,
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    let chars = name.trim().chars().count();
    if chars == 0 || chars > 200 || !crate::domain::text::is_displayable_text(name) {
        errors.push(FieldError::new(
            "name",
            "must be 1-200 printable characters",
        ));
    }
}

fn check_range(field: &str, value: i64, min: i64, max: i64, errors: &mut Vec<FieldError>) {
    if !(min..=max).contains(&value) {
        errors.push(FieldError::new(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
}

/// Creates a product (admin only).
#[utoipa::path(post, path = "/api/v1/admin/products", tag = "admin", operation_id = "createProduct",
    request_body = CreateProductRequest, security(("bearer" = [])),
    responses((status = 201, body = ProductView), (status = 400), (status = 401), (status = 403)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<CreateProductRequest>,
) -> Result<(StatusCode, Json<ProductView>), AppError> {
    user.ensure_admin()?;
    let mut errors = Vec::new();
    check_name(&body.name, &mut errors);
    check_range("price", body.price, 0, MAX_PRICE, &mut errors);
    check_range("stock", body.stock, 0, MAX_STOCK_CHANGE, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let product = catalog_admin::create(&state, body.name.trim(), body.price, body.stock).await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

/// Changes name or price, or adds stock (admin only).
#[utoipa::path(patch, path = "/api/v1/admin/products/{productId}", tag = "admin",
    params(("productId" = i64, Path, minimum = 1, maximum = 4294967295.0, description = "Product id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-64 visible ASCII")),
    request_body = UpdateProductRequest, security(("bearer" = [])),
    responses((status = 200, body = ProductView), (status = 400), (status = 401), (status = 403),
        (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(product_id): AppPath<u32>,
    IdempotencyKey(key): IdempotencyKey,
    AppJson(body): AppJson<UpdateProductRequest>,
) -> Result<Json<ProductView>, AppError> {
    user.ensure_admin()?;
    let mut errors = Vec::new();
    if let Some(name) = &body.name {
        check_name(name, &mut errors);
    }
    if let Some(price) = body.price {
        check_range("price", price, 0, MAX_PRICE, &mut errors);
    }
    if let Some(units) = body.add_stock {
        check_range("addStock", units, 1, MAX_STOCK_CHANGE, &mut errors);
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let name = body.name.as_deref().map(str::trim);
    let add = body.add_stock.unwrap_or(0);
    let product =
        catalog_admin::update(&state, i64::from(product_id), name, body.price, add, key).await?;
    Ok(Json(product.into()))
}

/// One ranked product.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PopularItem {
    /// Place in the ranking: 1 for the most units sold, up to 5.
    pub rank: usize,
    /// The ranked product's id (its `id` in the product routes).
    pub product_id: i64,
    /// The product's display name.
    pub name: String,
    /// The product's current unit price in won.
    pub price: i64,
    /// Units orderable now.
    pub stock: i64,
    /// Units sold in the window.
    pub sold_quantity: i64,
}

/// The ranking and the window it covers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PopularView {
    /// Start of the counted window (RFC 3339 UTC): the start of the oldest hour of the last 72.
    pub from: String,
    /// End of the counted window (RFC 3339 UTC): when the ranking was computed; a served
    /// ranking is at most about a second old.
    pub to: String,
    /// At most five, most sold first, ties by lower product id.
    pub items: Vec<PopularItem>,
}

/// Top 5 products by units sold over the last 72 hours (fewer when fewer sold).
#[utoipa::path(get, path = "/api/v1/products/popular", tag = "catalog",
    security(("bearer" = [])), responses((status = 200, body = PopularView), (status = 401)))]
pub async fn popular(
    State(state): State<AppState>,
    _user: AuthUser,
) -> Result<axum::response::Response, AppError> {
    use axum::http::header::{HeaderValue, CONTENT_TYPE};
    use axum::response::IntoResponse;
    let ranking = crate::service::popular::ranking(&state).await?;
    // Every reader of one ranking (a second's worth) gets the same bytes.
    let body = state
        .popular_body
        .of(&ranking, |ranking| {
            serde_json::to_vec(&popular_view(ranking))
        })
        .map_err(anyhow::Error::from)?;
    let json = HeaderValue::from_static("application/json");
    Ok(([(CONTENT_TYPE, json)], body).into_response())
}

/// The API view of a ranking.
fn popular_view(ranking: &crate::domain::Ranking) -> PopularView {
    use crate::events::at_millis;
    use crate::http::coupons::rfc3339;
    PopularView {
        from: rfc3339(at_millis(ranking.from_ms)),
        to: rfc3339(at_millis(ranking.to_ms)),
        items: ranking
            .items
            .iter()
            .map(|r| PopularItem {
                rank: r.rank,
                product_id: r.product.id,
                name: r.product.name.clone(),
                price: r.product.price,
                stock: r.product.stock,
                sold_quantity: r.sold,
            })
            .collect(),
    }
}
