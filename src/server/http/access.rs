//! Who may do what in an organization: not a member -> 404 (no existence leak), a member
//! without the role -> 403.

use crate::{
    domain::{org::OrgId, role::Role},
    server::{auth::Principal, error::AppError},
};

/// Checks that the caller is a member of `org` with at least `required`; returns their role.
pub fn require(principal: &Principal, org: &str, required: Role) -> Result<Role, AppError> {
    let org = OrgId::parse(org).map_err(|_| AppError::NotFound)?;
    let role = principal.role_in(org.as_str()).ok_or(AppError::NotFound)?;
    if !role.allows(required) {
        return Err(AppError::Forbidden(format!(
            "this needs the {required} role; you are {role}"
        )));
    }
    Ok(role)
}
