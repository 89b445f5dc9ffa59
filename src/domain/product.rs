//! Products as clients see them, and the popular-products ranking built from them.

/// A product as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The product's id in the catalog (the `id` of every product route).
    pub id: i64,
    /// Display name, as the administrator entered it.
    pub name: String,
    /// Unit price in won.
    pub price: i64,
    /// Units that can be ordered now (Redis's view).
    pub stock: i64,
}

/// One ranked product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// Place in the ranking, from 1 (most units sold); ties go to the lower product id.
    pub rank: usize,
    /// The product (live stock).
    pub product: Product,
    /// Units sold in the window.
    pub sold: i64,
}

/// A computed ranking and the window it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// Window start, Unix ms (start of the oldest hour bucket).
    pub from_ms: i64,
    /// Window end, Unix ms (when it was computed).
    pub to_ms: i64,
    /// At most five, most sold first, ties by lower product id.
    pub items: Vec<Ranked>,
}
