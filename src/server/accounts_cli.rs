//! `pfa-sync user add` and `pfa-sync token create`.

use super::{
    auth::secrets::{hash_password, new_secret, secret_hash, MIN_PASSWORD_LEN},
    store::Store,
};
use crate::domain::{org::OrgId, role::Role};
use anyhow::{bail, Context};

/// Parses `ORG:ROLE`.
pub fn parse_member(raw: &str) -> anyhow::Result<(OrgId, Role)> {
    let (org, role) = raw
        .split_once(':')
        .with_context(|| format!("--member {raw:?}: expected ORG:ROLE, e.g. org-rio:planner"))?;
    let org = OrgId::parse(org)?;
    let role = Role::parse(role).with_context(|| {
        format!("--member {raw:?}: role must be viewer, editor, planner or admin")
    })?;
    Ok((org, role))
}

fn check_username(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("username {name:?}: 1 to 64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

/// Creates a user with memberships; checks everything before writing anything.
pub async fn add_user(
    store: &Store,
    name: &str,
    password: &str,
    members: &[String],
) -> anyhow::Result<i64> {
    check_username(name)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        bail!("the password must have at least {MIN_PASSWORD_LEN} characters");
    }
    let members = members
        .iter()
        .map(|m| parse_member(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (org, _) in &members {
        if !store.org_exists(org).await? {
            bail!("no organization {org}");
        }
    }
    if store.user_by_name(name).await?.is_some() {
        bail!("a user named {name:?} already exists");
    }
    let hash = hash_password(password.to_owned()).await?;
    Ok(store.create_user(name, &hash, &members).await?)
}

/// Creates a bearer token for `user` and returns it (only its hash is stored).
pub async fn create_token(store: &Store, user: &str, scopes: &[String]) -> anyhow::Result<String> {
    let Some(record) = store.user_by_name(user).await? else {
        bail!("no user named {user:?}");
    };
    let token = new_secret("pfa_");
    store
        .create_token(&secret_hash(&token), record.id, &scopes.join(" "))
        .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_flags_are_parsed_strictly() {
        assert_eq!(parse_member("org-rio:planner").unwrap().1, Role::Planner);
        assert!(parse_member("org-rio").is_err());
        assert!(parse_member("org-rio:owner").is_err());
        assert!(parse_member("Org:admin").is_err());
    }

    #[tokio::test]
    async fn add_user_checks_everything_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/a.db", dir.path().display()))
            .await
            .unwrap();
        let members = vec![
            "org-rio:planner".to_owned(),
            "org-nowhere:viewer".to_owned(),
        ];
        assert!(add_user(&store, "ana", "long-enough", &members)
            .await
            .is_err());
        assert_eq!(store.user_count().await.unwrap(), 0, "nothing half-created");
        assert!(add_user(&store, "ana", "short", &members[..1])
            .await
            .is_err());
        let id = add_user(&store, "ana", "long-enough", &members[..1])
            .await
            .unwrap();
        assert_eq!(store.memberships(id).await.unwrap()[0].role, Role::Planner);
        assert!(
            add_user(&store, "ana", "long-enough", &members[..1])
                .await
                .is_err(),
            "duplicate"
        );
        let token = create_token(&store, "ana", &["publish".into()])
            .await
            .unwrap();
        let (user, scopes) = store
            .token_user(&secret_hash(&token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((user, scopes.as_str()), (id, "publish"));
    }
}
