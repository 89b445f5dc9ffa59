//! The pricing cache: each product's name, price and version in Redis, so creating an order
//! prices its lines without a MySQL read. MySQL stays the source of truth; an entry is
//! (re)loaded from it on a miss and rewritten after every change, and product_put.lua keeps
//! only the newest version.

use fred::prelude::*;

use super::call::{self, Reply, ScriptCall};
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

/// How long an entry lives without being rewritten. Every change rewrites it at once; the
/// lifetime only bounds how long a change that never reached Redis (the changing instance
/// died between MySQL and Redis) can be missed.
pub const PRODUCT_TTL_SECS: i64 = 300;

/// What pricing needs of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductTerms {
    /// Name at order time.
    pub name: String,
    /// Unit price in won.
    pub price: i64,
}

/// One write of a product's cached terms (product_put.lua): the highest version wins.
pub struct PutCall<'a> {
    /// The product.
    pub product_id: i64,
    /// Name and price to cache.
    pub terms: &'a ProductTerms,
    /// MySQL's `products.version` of these terms.
    pub version: i64,
}

impl ScriptCall for PutCall<'_> {
    type Outcome = bool;
    // A cache of MySQL's product: lost in a failover, it is read again.
    const REPLICATED: bool = false;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.product_put
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        vec![k.product(self.product_id)]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            self.terms.name.clone(),
            self.terms.price.to_string(),
            self.version.to_string(),
            PRODUCT_TTL_SECS.to_string(),
        ])
    }

    fn decode(reply: Reply) -> anyhow::Result<bool> {
        match reply.int(0)? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(reply.unknown_status()),
        }
    }
}

/// Caches a product's terms at `version`; `false` when Redis already holds this version or a
/// newer one (then nothing changed).
pub async fn put(
    cache: &Cache,
    product_id: i64,
    terms: &ProductTerms,
    version: i64,
) -> anyhow::Result<bool> {
    call::run(
        cache,
        &PutCall {
            product_id,
            terms,
            version,
        },
    )
    .await
}

/// Drops a product's entry (before its terms change in MySQL, so a reader that misses loads
/// the new terms rather than keeping the old ones).
pub async fn forget(cache: &Cache, product_id: i64) -> anyhow::Result<()> {
    let _: i64 = cache.client().del(cache.keys.product(product_id)).await?;
    Ok(())
}

fn terms_of(fields: Vec<Option<String>>) -> Option<ProductTerms> {
    let mut fields = fields.into_iter();
    let name = fields.next().flatten()?;
    let price = fields.next().flatten()?.parse().ok()?;
    Some(ProductTerms { name, price })
}

/// Cached terms of many products in one round trip, in the same order; `None` for a miss.
pub async fn get_many(
    cache: &Cache,
    product_ids: &[i64],
) -> anyhow::Result<Vec<Option<ProductTerms>>> {
    const FIELDS: [&str; 2] = ["name", "price"];
    match product_ids {
        [] => Ok(Vec::new()),
        [one] => {
            let fields: Vec<Option<String>> = cache
                .client()
                .hmget(cache.keys.product(*one), FIELDS.to_vec())
                .await?;
            Ok(vec![terms_of(fields)])
        }
        many => {
            let pipeline = cache.client().pipeline();
            for id in many {
                let () = pipeline
                    .hmget(cache.keys.product(*id), FIELDS.to_vec())
                    .await?;
            }
            let replies: Vec<Value> = pipeline.all().await?;
            replies
                .into_iter()
                .map(|reply| Ok(terms_of(reply.convert()?)))
                .collect()
        }
    }
}
