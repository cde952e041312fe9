//! Users, memberships, sessions and API tokens.

use super::Store;
use crate::domain::{org::OrgId, role::Role};
use anyhow::Context;
use chrono::{DateTime, Utc};

/// A user as the server knows them after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
}

/// One organization membership with the organization's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub org_id: String,
    pub org_code: String,
    pub org_name: String,
    pub role: Role,
}

impl Store {
    /// Creates a user; fails with a clear message when the name is taken.
    #[tracing::instrument(skip(self, password_hash))]
    pub async fn create_user(&self, username: &str, password_hash: &str) -> anyhow::Result<i64> {
        let result = sqlx::query("INSERT INTO users (username, password_hash) VALUES (?, ?)")
            .bind(username)
            .bind(password_hash)
            .execute(self.pool())
            .await;
        match result {
            Ok(done) => Ok(done.last_insert_rowid()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                anyhow::bail!("a user named {username:?} already exists")
            }
            Err(e) => Err(e).context("cannot create user"),
        }
    }

    /// Adds or replaces the user's role in `org`.
    pub async fn set_membership(
        &self,
        user_id: i64,
        org: &OrgId,
        role: Role,
    ) -> anyhow::Result<()> {
        if !self.org_exists(org).await? {
            anyhow::bail!("no organization {org}");
        }
        sqlx::query(
            "INSERT INTO memberships (user_id, org_id, role) VALUES (?, ?, ?)
             ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user_id)
        .bind(org.as_str())
        .bind(role.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn org_exists(&self, org: &OrgId) -> anyhow::Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM organizations WHERE id = ?")
            .bind(org.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// The PEMS organization code of an org (e.g. RIO).
    pub async fn org_code(&self, org: &str) -> anyhow::Result<String> {
        sqlx::query_scalar("SELECT code FROM organizations WHERE id = ?")
            .bind(org)
            .fetch_optional(self.pool())
            .await?
            .with_context(|| format!("no organization {org}"))
    }

    pub async fn user_by_name(&self, username: &str) -> anyhow::Result<Option<UserRecord>> {
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, username, password_hash FROM users WHERE username = ?")
                .bind(username)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(id, username, password_hash)| UserRecord {
            id,
            username,
            password_hash,
        }))
    }

    pub async fn user_by_id(&self, id: i64) -> anyhow::Result<Option<UserRecord>> {
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, username, password_hash FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(id, username, password_hash)| UserRecord {
            id,
            username,
            password_hash,
        }))
    }

    pub async fn user_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn memberships(&self, user_id: i64) -> anyhow::Result<Vec<Membership>> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT o.id, o.code, o.name, m.role FROM memberships m
             JOIN organizations o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(org_id, org_code, org_name, role)| {
                let role = Role::parse(&role).with_context(|| format!("unknown role {role:?}"))?;
                Ok(Membership {
                    org_id,
                    org_code,
                    org_name,
                    role,
                })
            })
            .collect()
    }

    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(Utc::now().to_rfc3339())
        .bind(expires_at.to_rfc3339())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user of a live session: not revoked, not expired.
    pub async fn session_user(&self, id_hash: &str) -> anyhow::Result<Option<i64>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT user_id, expires_at FROM sessions WHERE id_hash = ? AND revoked_at IS NULL",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(user_id, expires)| {
            let expires = DateTime::parse_from_rfc3339(&expires).ok()?;
            (expires > Utc::now()).then_some(user_id)
        }))
    }

    /// Revokes a session; true when it was live.
    pub async fn revoke_session(&self, id_hash: &str) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(id_hash)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn create_token(
        &self,
        token_hash: &str,
        user_id: i64,
        scopes: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO api_tokens (token_hash, user_id, scopes) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(scopes)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The user and scopes of a live token.
    pub async fn token_user(&self, token_hash: &str) -> anyhow::Result<Option<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT user_id, scopes FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?)
    }
}
