//! Demo accounts of dev mode, one per role (listed in README). Prod mode creates none.

use super::secrets::hash_password;
use crate::{
    domain::{org::OrgId, role::Role},
    server::store::{accounts::CreateUserError, Store},
};

/// Password of every demo account.
pub const DEMO_PASSWORD: &str = "pfa-demo";

/// (username, memberships) of the demo accounts.
pub const DEMO_USERS: [(&str, &[(&str, Role)]); 4] = [
    ("viewer", &[("org-rio", Role::Viewer)]),
    ("editor", &[("org-rio", Role::Editor)]),
    (
        "planner",
        &[
            ("org-rio", Role::Planner),
            ("org-portarthur", Role::Planner),
        ],
    ),
    (
        "admin",
        &[("org-rio", Role::Admin), ("org-portarthur", Role::Admin)],
    ),
];

/// Creates the demo accounts that do not exist yet (hashing in parallel). Each is created with
/// its memberships in one transaction, so instances starting together on an empty database
/// each create some and skip those another one created first.
pub async fn ensure_demo_users(store: &Store) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for (name, memberships) in DEMO_USERS {
        if store.user_by_name(name).await?.is_none() {
            missing.push((
                name,
                memberships,
                tokio::spawn(hash_password(DEMO_PASSWORD.to_owned())),
            ));
        }
    }
    for (name, memberships, hash) in missing {
        let memberships = memberships
            .iter()
            .map(|(org, role)| Ok((OrgId::parse(org)?, *role)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        match store.create_user(name, &hash.await??, &memberships).await {
            Ok(_) => tracing::info!("created demo user {name}"),
            Err(CreateUserError::Taken(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
