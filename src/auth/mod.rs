//! Authentication primitives: password hashing and signed access tokens.

pub mod password;
pub mod token;
pub mod verified;

pub use token::{Claims, TokenKeys};
