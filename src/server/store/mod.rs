//! Persistence behind one interface. SQLite (the embedded default) now; PostgreSQL is added
//! beside it for several server instances. All SQL is parameterized.

pub mod accounts;
pub mod conflicts;
pub mod events;
pub mod records;
pub mod sync;

use anyhow::Context;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};
use std::{path::Path, str::FromStr, time::Duration};

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating the file and its folder if needed) and migrates the database.
    #[tracing::instrument(skip_all, fields(url = %redact(url)))]
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if !url.starts_with("sqlite:") {
            anyhow::bail!(
                "unsupported database URL {:?}: this build stores data in SQLite (sqlite://path/to/file.db)",
                redact(url)
            );
        }
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid database URL {:?}", redact(url)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(parent) = Path::new(options.get_filename()).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("cannot create database folder {}", parent.display())
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings a connection before lending it by default: one more round trip to the
            // connection's worker thread per query, for a local file that cannot go stale.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open database {:?}", redact(url)))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("database migrations failed")?;
        Ok(Self { pool })
    }

    /// A trivial query, for `/health`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later queries fail. Used at shutdown (and by tests to
    /// simulate a database outage).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The URL without a password, fit for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://***@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[tokio::test]
    async fn creates_the_folder_and_file_then_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/app.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.ping().await.unwrap();
        assert!(path.exists());
        let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(orgs, 2);
    }

    #[tokio::test]
    async fn refuses_other_databases_with_a_clear_message() {
        let err = Store::connect("mysql://x").await.unwrap_err();
        assert!(err.to_string().contains("unsupported database URL"));
    }
}
