//! A refused input field and why, the unit of a validation failure (`errors[]` of a 422).

use serde::Serialize;

/// One invalid input field: clients show `message` next to the input named `field`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON field or query/path parameter the client sent, as named in the API.
    pub field: String,
    /// Why it was refused, in words a user can act on (e.g. "is not an e-mail").
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
