//! Users, memberships, sessions and API tokens.

use super::{on_pool, on_tx, Store};
use crate::domain::{org::OrgId, role::Role};
use anyhow::Context;
use chrono::{DateTime, Utc};

/// The PostgreSQL channel of revoked sessions; the payload is the session's id hash.
pub const SESSIONS_CHANNEL: &str = "pfa_sync_sessions";

/// What a socket's credential still allows in its organization (checked at every heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Member(Role),
    /// The session or token is revoked or expired, or the user removed.
    SignedOut,
    /// The user is no longer a member of the organization.
    NotMember,
}

/// The credential a caller signed in with, by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session(String),
    Token(String),
}

/// An API token as `token list` shows it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub scopes: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// GCRA's parameters for `per_minute` a minute, as many at once (milliseconds).
struct Gcra {
    interval: i64,
    tolerance: i64,
}

impl Gcra {
    fn per_minute(per_minute: u32) -> Self {
        let per_minute = i64::from(per_minute.max(1));
        let interval = 60_000 / per_minute;
        Self {
            interval,
            tolerance: interval * per_minute,
        }
    }

    /// How long one more must wait, given the key's theoretical arrival time; None: admitted.
    fn wait(&self, tat: i64, now_ms: i64) -> Option<i64> {
        let over = tat.max(now_ms) + self.interval - now_ms - self.tolerance;
        (over > 0).then_some(over)
    }
}

/// id, scopes, created_at, expires_at, revoked_at.
type TokenRow = (i64, String, String, Option<String>, Option<String>);

/// Whether an RFC 3339 expiry is still in the future (an unreadable one is not).
fn live_until(expires: &str) -> bool {
    DateTime::parse_from_rfc3339(expires).is_ok_and(|e| e > Utc::now())
}

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

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user named {0:?} already exists")]
    Taken(String),
    #[error("no organization {0}")]
    NoOrganization(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CreateUserError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl Store {
    /// Creates a user with its memberships in one transaction: all of it or nothing (another
    /// process creating the same name at the same moment gets [`CreateUserError::Taken`]).
    #[tracing::instrument(skip(self, password_hash))]
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        memberships: &[(OrgId, Role)],
    ) -> Result<i64, CreateUserError> {
        let mut tx = self.begin().await?;
        let user_id = on_tx!(&mut tx, t, pg => {
            let inserted = sqlx::query_scalar(
                "INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING id",
            )
            .bind(username)
            .bind(password_hash)
            .fetch_one(&mut **t)
            .await;
            let user_id: i64 = match inserted {
                Ok(id) => id,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(CreateUserError::Taken(username.to_owned()))
                }
                Err(e) => return Err(anyhow::Error::new(e).context("cannot create user").into()),
            };
            for (org, role) in memberships {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)")
                        .bind(org.as_str())
                        .fetch_one(&mut **t)
                        .await?;
                if !exists {
                    return Err(CreateUserError::NoOrganization(org.to_string()));
                }
                sqlx::query(
                    "INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role",
                )
                .bind(user_id)
                .bind(org.as_str())
                .bind(role.as_str())
                .execute(&mut **t)
                .await?;
            }
            user_id
        });
        tx.commit().await?;
        Ok(user_id)
    }

    pub async fn org_exists(&self, org: &OrgId) -> anyhow::Result<bool> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)")
                .bind(org.as_str())
                .fetch_one(pool)
                .await?
        }))
    }

    /// The PEMS organization code of an org (e.g. RIO).
    pub async fn org_code(&self, org: &str) -> anyhow::Result<String> {
        let code: Option<String> = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT code FROM organizations WHERE id = $1")
                .bind(org)
                .fetch_optional(pool)
                .await?
        });
        code.with_context(|| format!("no organization {org}"))
    }

    /// The user of that name, whatever its case.
    pub async fn user_by_name(&self, username: &str) -> anyhow::Result<Option<UserRecord>> {
        let row: Option<(i64, String, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT id, username, password_hash FROM users
                 WHERE lower(username) = lower($1) AND removed_at IS NULL",
            )
            .bind(username)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(id, username, password_hash)| UserRecord {
            id,
            username,
            password_hash,
        }))
    }

    pub async fn user_by_id(&self, id: i64) -> anyhow::Result<Option<UserRecord>> {
        let row: Option<(i64, String, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT id, username, password_hash FROM users WHERE id = $1 AND removed_at IS NULL",
            )
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(id, username, password_hash)| UserRecord {
            id,
            username,
            password_hash,
        }))
    }

    pub async fn user_count(&self) -> anyhow::Result<i64> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        }))
    }

    pub async fn memberships(&self, user_id: i64) -> anyhow::Result<Vec<Membership>> {
        let rows: Vec<(String, String, String, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT o.id, o.code, o.name, m.role FROM memberships m
                 JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
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
        on_pool!(self.db(), pool, pg => {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id_hash)
            .bind(user_id)
            .bind(Utc::now().to_rfc3339())
            .bind(expires_at.to_rfc3339())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The user of a live session: not revoked, not expired.
    pub async fn session_user(&self, id_hash: &str) -> anyhow::Result<Option<i64>> {
        let row: Option<(i64, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT user_id, expires_at FROM sessions WHERE id_hash = $1 AND revoked_at IS NULL",
            )
            .bind(id_hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(user_id, expires)| {
            let expires = DateTime::parse_from_rfc3339(&expires).ok()?;
            (expires > Utc::now()).then_some(user_id)
        }))
    }

    /// Revokes a session; true when it was live. On PostgreSQL every instance hears of it
    /// ([`SESSIONS_CHANNEL`], at commit) and closes the session's sockets.
    pub async fn revoke_session(&self, id_hash: &str) -> anyhow::Result<bool> {
        let mut tx = self.begin().await?;
        let done = on_tx!(&mut tx, t, pg => {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $1 WHERE id_hash = $2 AND revoked_at IS NULL",
            )
            .bind(Utc::now().to_rfc3339())
            .bind(id_hash)
            .execute(&mut **t)
            .await?
            .rows_affected()
        });
        if done > 0 {
            tx.notify(SESSIONS_CHANNEL, id_hash).await?;
        }
        tx.commit().await?;
        Ok(done > 0)
    }

    /// Stores a token's hash; returns its id.
    pub async fn create_token(
        &self,
        token_hash: &str,
        user_id: i64,
        scopes: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> anyhow::Result<i64> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar(
                "INSERT INTO api_tokens (token_hash, user_id, scopes, expires_at) VALUES ($1, $2, $3, $4)
                 RETURNING id",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(scopes)
            .bind(expires_at.map(|e| e.to_rfc3339()))
            .fetch_one(pool)
            .await?
        }))
    }

    /// The user and scopes of a live token: not revoked, not expired.
    pub async fn token_user(&self, token_hash: &str) -> anyhow::Result<Option<(i64, String)>> {
        let row: Option<(i64, String, Option<String>)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT user_id, scopes, expires_at FROM api_tokens
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(row
            .filter(|(_, _, expires)| expires.as_deref().is_none_or(live_until))
            .map(|(user_id, scopes, _)| (user_id, scopes)))
    }

    /// The tokens of a user, newest first.
    pub async fn tokens_of(&self, user_id: i64) -> anyhow::Result<Vec<TokenInfo>> {
        let rows: Vec<TokenRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT id, scopes, created_at, expires_at, revoked_at FROM api_tokens
                 WHERE user_id = $1 ORDER BY id DESC",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, scopes, created_at, expires_at, revoked_at)| TokenInfo {
                    id,
                    scopes,
                    created_at,
                    expires_at,
                    revoked_at,
                },
            )
            .collect())
    }

    /// Revokes a token by id; false when there is no live token with that id.
    pub async fn revoke_token(&self, id: i64) -> anyhow::Result<bool> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(Utc::now().to_rfc3339())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        }) > 0)
    }

    /// Removes a user: they can no longer sign in, their sessions and tokens are revoked and
    /// their memberships deleted, in one transaction; jobs, history and the audit trail keep
    /// their name. False when there is no such (unremoved) user.
    pub async fn remove_user(&self, user_id: i64) -> anyhow::Result<bool> {
        let now = Utc::now().to_rfc3339();
        let mut tx = self.begin().await?;
        let removed = on_tx!(&mut tx, t, pg => {
            let removed = sqlx::query(
                "UPDATE users SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL",
            )
            .bind(&now)
            .bind(user_id)
            .execute(&mut **t)
            .await?
            .rows_affected();
            for sql in [
                "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            ] {
                sqlx::query(sql).bind(&now).bind(user_id).execute(&mut **t).await?;
            }
            sqlx::query("DELETE FROM memberships WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut **t)
                .await?;
            removed
        });
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Sets the user's role in `org` (adds the membership when missing); with `None`, removes
    /// the membership. False when `None` found no membership to remove.
    pub async fn set_role(
        &self,
        user_id: i64,
        org: &OrgId,
        role: Option<Role>,
    ) -> anyhow::Result<bool> {
        Ok(on_pool!(self.db(), pool, pg => {
            match role {
                Some(role) => sqlx::query(
                    "INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role",
                )
                .bind(user_id)
                .bind(org.as_str())
                .bind(role.as_str())
                .execute(pool)
                .await?,
                None => sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND org_id = $2")
                    .bind(user_id)
                    .bind(org.as_str())
                    .execute(pool)
                    .await?,
            }
            .rows_affected()
        }) > 0)
    }

    /// The user's role in `org` now (None: not a member, or the user was removed).
    pub async fn member_role(&self, user_id: i64, org: &str) -> anyhow::Result<Option<Role>> {
        let role: Option<String> = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar(
                "SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id
                 WHERE m.user_id = $1 AND m.org_id = $2 AND u.removed_at IS NULL",
            )
            .bind(user_id)
            .bind(org)
            .fetch_optional(pool)
            .await?
        });
        role.map(|r| Role::parse(&r).with_context(|| format!("unknown role {r:?}")))
            .transpose()
    }

    /// What `credential` of `user_id` still allows in `org`.
    pub async fn standing(
        &self,
        credential: &Credential,
        user_id: i64,
        org: &str,
    ) -> anyhow::Result<Standing> {
        let live = match credential {
            Credential::Session(hash) => self.session_user(hash).await?,
            Credential::Token(hash) => self.token_user(hash).await?.map(|(user, _)| user),
        };
        if live != Some(user_id) || self.user_by_id(user_id).await?.is_none() {
            return Ok(Standing::SignedOut);
        }
        Ok(match self.member_role(user_id, org).await? {
            Some(role) => Standing::Member(role),
            None => Standing::NotMember,
        })
    }

    /// Deletes sessions that expired (or were revoked) before `before`; returns how many.
    pub async fn purge_sessions(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let before = before.to_rfc3339();
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1")
                .bind(&before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

impl Store {
    /// Counts one attempt against `key` with GCRA: `per_minute` attempts a minute, as many at
    /// once. `Err(wait)` when the key is over its quota (and nothing is counted). Shared by
    /// every instance on the database.
    pub async fn throttle(
        &self,
        key: &str,
        per_minute: u32,
        now_ms: i64,
    ) -> anyhow::Result<Result<(), i64>> {
        let gcra = Gcra::per_minute(per_minute);
        let admitted: Option<i64> = on_pool!(self.db(), pool, pg => {
            let later = if pg { "GREATEST" } else { "MAX" };
            sqlx::query_scalar(&format!(
                "INSERT INTO login_throttle (key, tat) VALUES ($1, $2 + $3)
                 ON CONFLICT (key) DO UPDATE SET tat = {later}(login_throttle.tat, $2) + $3
                 WHERE {later}(login_throttle.tat, $2) + $3 - $2 <= $4
                 RETURNING tat"
            ))
            .bind(key)
            .bind(now_ms)
            .bind(gcra.interval)
            .bind(gcra.tolerance)
            .fetch_optional(pool)
            .await?
        });
        if admitted.is_some() {
            return Ok(Ok(()));
        }
        let tat = self.throttle_tat(key).await?.unwrap_or(now_ms);
        // Refused: the quota is spent (a wait of at least 1 ms).
        Ok(Err(gcra.wait(tat, now_ms).unwrap_or(1)))
    }

    /// Whether [`Store::throttle`] would admit one more for `key` now, without counting it:
    /// `Err(ms)` to wait otherwise.
    pub async fn throttle_peek(
        &self,
        key: &str,
        per_minute: u32,
        now_ms: i64,
    ) -> anyhow::Result<Result<(), i64>> {
        let gcra = Gcra::per_minute(per_minute);
        Ok(match self.throttle_tat(key).await? {
            Some(tat) => gcra.wait(tat, now_ms).map_or(Ok(()), Err),
            None => Ok(()),
        })
    }

    /// The theoretical arrival time GCRA keeps for `key`, if it has one.
    async fn throttle_tat(&self, key: &str) -> anyhow::Result<Option<i64>> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT tat FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Forgets idle throttle keys; returns how many.
    pub async fn prune_throttle(&self, now_ms: i64) -> anyhow::Result<u64> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query("DELETE FROM login_throttle WHERE tat < $1")
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
