//! Who may do what in an organization: not a member -> 404 (no existence leak), a member
//! without the role -> 403.

use crate::{
    domain::{org::OrgId, role::Role},
    server::{
        auth::Principal,
        error::AppError,
        store::{conflicts::AuditEntry, Store},
    },
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

/// An entry of the organization's audit trail on behalf of the caller, to be written with the
/// change it records.
pub fn audit_entry(
    org: &str,
    principal: &Principal,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        org: org.to_owned(),
        user_id: Some(principal.user_id),
        username: principal.username.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail,
    }
}

/// Appends an entry to the organization's audit trail on behalf of the caller.
pub async fn audit(
    store: &Store,
    org: &str,
    principal: &Principal,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    store
        .audit(
            org,
            Some(principal.user_id),
            &principal.username,
            action,
            target,
            detail,
        )
        .await?;
    Ok(())
}
