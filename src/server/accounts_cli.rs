//! `pfa-sync user add|remove|set-role` and `pfa-sync token create|list|revoke`.

use super::{
    auth::secrets::{hash_password, new_secret, secret_hash, MIN_PASSWORD_LEN},
    store::{accounts::TokenInfo, Store},
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

async fn user_id(store: &Store, user: &str) -> anyhow::Result<i64> {
    match store.user_by_name(user).await? {
        Some(record) => Ok(record.id),
        None => bail!("no user named {user:?}"),
    }
}

/// Creates a bearer token for `user` and returns it (only its hash is stored); it expires
/// after `expires_in_days` when given.
pub async fn create_token(
    store: &Store,
    user: &str,
    scopes: &[String],
    expires_in_days: Option<u32>,
) -> anyhow::Result<String> {
    if expires_in_days == Some(0) {
        bail!("--expires-in-days must be at least 1");
    }
    let user_id = user_id(store, user).await?;
    let expires =
        expires_in_days.map(|days| chrono::Utc::now() + chrono::Duration::days(i64::from(days)));
    let token = new_secret("pfa_");
    store
        .create_token(&secret_hash(&token), user_id, &scopes.join(" "), expires)
        .await?;
    Ok(token)
}

/// The tokens of `user` (ids, scopes and dates; never the tokens).
pub async fn list_tokens(store: &Store, user: &str) -> anyhow::Result<Vec<TokenInfo>> {
    store.tokens_of(user_id(store, user).await?).await
}

/// One line per token for `token list`.
pub fn token_line(token: &TokenInfo) -> String {
    let state = match (&token.revoked_at, &token.expires_at) {
        (Some(at), _) => format!("revoked {at}"),
        (None, Some(at)) => format!("expires {at}"),
        (None, None) => "no expiry".to_owned(),
    };
    let scopes = if token.scopes.is_empty() {
        "-"
    } else {
        &token.scopes
    };
    format!(
        "{}\t{scopes}\tcreated {}\t{state}",
        token.id, token.created_at
    )
}

/// Revokes the token with that id.
pub async fn revoke_token(store: &Store, id: i64) -> anyhow::Result<()> {
    if !store.revoke_token(id).await? {
        bail!("no live token with id {id} (see `pfa-sync token list --user NAME`)");
    }
    Ok(())
}

/// Removes `user`: no more sign-in, sessions and tokens revoked, memberships gone.
pub async fn remove_user(store: &Store, user: &str) -> anyhow::Result<()> {
    let id = user_id(store, user).await?;
    if !store.remove_user(id).await? {
        bail!("no user named {user:?}");
    }
    Ok(())
}

/// Sets `user`'s role from `ORG:ROLE`; `ORG:none` removes the membership.
pub async fn set_role(store: &Store, user: &str, member: &str) -> anyhow::Result<()> {
    let id = user_id(store, user).await?;
    let (org, role) = match member.split_once(':') {
        Some((org, "none")) => (OrgId::parse(org)?, None),
        _ => {
            let (org, role) = parse_member(member)?;
            (org, Some(role))
        }
    };
    if !store.org_exists(&org).await? {
        bail!("no organization {org}");
    }
    if !store.set_role(id, &org, role).await? {
        bail!("{user:?} is not a member of {org}");
    }
    Ok(())
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
        let token = create_token(&store, "ana", &["publish".into()], None)
            .await
            .unwrap();
        let (user, scopes) = store
            .token_user(&secret_hash(&token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((user, scopes.as_str()), (id, "publish"));
    }

    #[tokio::test]
    async fn tokens_expire_are_listed_and_revoked_and_removed_users_lose_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/a.db", dir.path().display()))
            .await
            .unwrap();
        let members = [
            "org-rio:planner".to_owned(),
            "org-portarthur:viewer".to_owned(),
        ];
        let id = add_user(&store, "ana", "long-enough", &members)
            .await
            .unwrap();
        assert!(create_token(&store, "ana", &[], Some(0)).await.is_err());
        let lasting = create_token(&store, "ana", &[], Some(30)).await.unwrap();
        let forever = create_token(&store, "ana", &[], None).await.unwrap();
        let listed = list_tokens(&store, "ana").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed[1].expires_at.is_some() && listed[0].expires_at.is_none());
        assert!(token_line(&listed[1]).contains("expires"));
        // An expiry in the past.
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        store
            .create_token(&secret_hash("pfa_old"), id, "", Some(past))
            .await
            .unwrap();
        assert!(store
            .token_user(&secret_hash("pfa_old"))
            .await
            .unwrap()
            .is_none());
        assert!(store
            .token_user(&secret_hash(&lasting))
            .await
            .unwrap()
            .is_some());

        revoke_token(&store, listed[0].id).await.unwrap();
        assert!(store
            .token_user(&secret_hash(&forever))
            .await
            .unwrap()
            .is_none());
        assert!(
            revoke_token(&store, listed[0].id).await.is_err(),
            "only once"
        );
        assert!(token_line(&list_tokens(&store, "ana").await.unwrap()[1]).contains("revoked"));

        set_role(&store, "ana", "org-rio:viewer").await.unwrap();
        assert_eq!(
            store.member_role(id, "org-rio").await.unwrap(),
            Some(Role::Viewer)
        );
        set_role(&store, "ana", "org-portarthur:none")
            .await
            .unwrap();
        assert_eq!(store.member_role(id, "org-portarthur").await.unwrap(), None);
        assert!(set_role(&store, "ana", "org-portarthur:none")
            .await
            .is_err());
        assert!(set_role(&store, "ana", "org-nowhere:viewer").await.is_err());
        assert!(set_role(&store, "ana", "org-rio:owner").await.is_err());

        remove_user(&store, "ana").await.unwrap();
        assert!(store.user_by_name("ana").await.unwrap().is_none());
        assert!(store
            .token_user(&secret_hash(&lasting))
            .await
            .unwrap()
            .is_none());
        assert_eq!(store.member_role(id, "org-rio").await.unwrap(), None);
        assert!(remove_user(&store, "ana").await.is_err());
        assert!(
            add_user(&store, "ana", "long-enough", &members[..1])
                .await
                .is_err(),
            "a removed user's name stays taken: jobs and the audit name them"
        );
    }
}
