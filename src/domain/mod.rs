//! Validated value types built at the edge, so services only ever see valid values.

pub mod caller;
pub mod field;
pub mod order;
pub mod product;
pub mod text;
pub mod user;

pub use caller::Caller;
pub use field::FieldError;
pub use order::Order;
pub use product::{Product, Ranked, Ranking};
pub use user::{Email, Password, Role, UserId, UserName};
