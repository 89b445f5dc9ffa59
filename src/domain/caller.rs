//! Who is asking: the authenticated user and the role their token carries, so services decide
//! what a caller may see or do from one value instead of a loose `admin: bool`.

use super::{Role, UserId};

/// The authenticated caller of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user acting.
    pub id: UserId,
    /// The role their token carries.
    pub role: Role,
}

impl Caller {
    /// Whether the caller may act on other users' records (an administrator).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}
