//! Validated value types built at the edge, so services only ever see valid values.

pub mod money;
pub mod text;
pub mod user;

pub use money::Won;
pub use user::{Email, Password, Role, UserId, UserName};
