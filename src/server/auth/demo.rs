//! Demo accounts of dev mode, one per role (listed in README). Prod mode creates none.

use super::secrets::hash_password;
use crate::{
    domain::{org::OrgId, role::Role},
    server::store::Store,
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

/// Creates the demo accounts that do not exist yet (hashing in parallel).
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
        let user_id = store.create_user(name, &hash.await??).await?;
        for (org, role) in memberships {
            store
                .set_membership(user_id, &OrgId::parse(org)?, *role)
                .await?;
        }
        tracing::info!("created demo user {name}");
    }
    Ok(())
}
