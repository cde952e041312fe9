//! Persistence behind one interface, on SQLite (the embedded default, one server instance) or
//! PostgreSQL (several instances), chosen by the database URL's scheme. Every rule is written
//! once: a method's body is compiled for each backend ([`on_pool!`], [`on_tx!`]) and only the
//! SQL text differs where the two dialects do (batches of rows bound as one JSON array are read
//! with `json_each` on SQLite and `jsonb_array_elements` on PostgreSQL). All SQL is
//! parameterized (`$1`, `$2`, ... on both).

pub mod accounts;
pub mod commands;
pub mod conflicts;
pub mod events;
pub mod records;
pub mod sync;
pub mod throwaway;

use anyhow::Context;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    PgPool, Postgres, Sqlite, SqlitePool, Transaction,
};
use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// This process's id among the instances sharing the database (NOTIFY payloads, leases).
    instance: std::sync::Arc<str>,
    /// The SQLite file (None for PostgreSQL and in-memory SQLite).
    file: Option<std::path::PathBuf>,
    /// SQLite: whose turn it is to write, and the heads the writers assign seqs from. One
    /// writer at a time is all SQLite allows; waiting here, in line, is cheaper and fairer than
    /// SQLite's busy handler, which sleeps up to 100 ms between tries while another
    /// transaction holds the lock.
    turns: Option<Arc<tokio::sync::Mutex<Heads>>>,
}

/// SQLite: each organization's head seq as this process last committed it. One process serves
/// a SQLite file, so the process knows the heads and appending needs no read of them; the
/// log's triggers refuse a seq at or below the stored head, which catches a stale entry.
pub(crate) type Heads = std::collections::HashMap<String, u64>;

/// Held while a server serves a SQLite file: a second server on the same file cannot get it.
#[derive(Debug)]
pub struct ServingLock {
    _file: std::fs::File,
}

/// The pool of one backend.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction on either backend; dropped without [`Tx::commit`], it rolls back.
pub(crate) struct Tx<'c> {
    inner: TxInner<'c>,
    /// On SQLite, this process's turn to write (see [`Store::begin`]) with the heads.
    turn: Option<tokio::sync::OwnedMutexGuard<Heads>>,
    /// SQLite: the heads this transaction's appends moved to, kept in `turn` once committed.
    heads_after: Heads,
}

pub(crate) enum TxInner<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `on_pool!(db, pool, pg => body)`: runs `body` with `pool` bound to the backend's pool and
/// `pg` telling whether it is PostgreSQL. The body is written once and compiled per backend.
macro_rules! on_pool {
    ($db:expr, $pool:ident, $pg:ident => $body:expr) => {
        match $db {
            $crate::server::store::Db::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $pg = false;
                $body
            }
            $crate::server::store::Db::Postgres($pool) => {
                #[allow(unused_variables)]
                let $pg = true;
                $body
            }
        }
    };
}

/// `on_tx!(tx, t, pg => body)`: like [`on_pool!`] for an open [`Tx`]; `t` is the backend's
/// transaction (`&mut **t` executes on it).
macro_rules! on_tx {
    ($tx:expr, $t:ident, $pg:ident => $body:expr) => {
        match &mut ($tx).inner {
            $crate::server::store::TxInner::Sqlite($t) => {
                #[allow(unused_variables)]
                let $pg = false;
                $body
            }
            $crate::server::store::TxInner::Postgres($t) => {
                #[allow(unused_variables)]
                let $pg = true;
                $body
            }
        }
    };
}
pub(crate) use {on_pool, on_tx};

/// The SQLite text or the PostgreSQL text of a statement, by backend.
pub(crate) fn dialect<'a>(pg: bool, sqlite: &'a str, postgres: &'a str) -> &'a str {
    if pg {
        postgres
    } else {
        sqlite
    }
}

impl Tx<'_> {
    /// NOTIFY `channel` with `payload` on PostgreSQL, delivered to every LISTENing instance
    /// when this transaction commits; nothing on SQLite, whose one instance has nobody to tell.
    pub(crate) async fn notify(&mut self, channel: &str, payload: &str) -> anyhow::Result<()> {
        if let TxInner::Postgres(t) = &mut self.inner {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&mut **t)
                .await
                .with_context(|| format!("notify {channel}"))?;
        }
        Ok(())
    }

    pub async fn commit(self) -> anyhow::Result<()> {
        let Tx {
            inner,
            turn,
            heads_after,
        } = self;
        match inner {
            TxInner::Sqlite(t) => {
                let mut heads = turn.expect("a SQLite transaction holds the turn");
                match t.commit().await {
                    Ok(()) => heads.extend(heads_after),
                    Err(e) => {
                        // Whether it committed is unknown: read the heads again when needed.
                        heads.clear();
                        return Err(e).context("commit");
                    }
                }
            }
            TxInner::Postgres(t) => t.commit().await.context("commit")?,
        }
        Ok(())
    }
}

impl Store {
    /// Opens and migrates the database of `url`: `sqlite://path/to/file.db` (creating the file
    /// and its folder if needed) or `postgres://user@host:port/db`.
    #[tracing::instrument(skip_all, fields(url = %redact(url)))]
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url).await
        } else {
            anyhow::bail!(
                "unsupported database URL {:?}: use sqlite://path/to/file.db (one instance) or \
                 postgres://user@host:port/database (one or several instances)",
                redact(url)
            )
        }
    }

    async fn connect_sqlite(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid database URL {:?}", redact(url)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let filename = options.get_filename().to_owned();
        if let Some(parent) = filename.parent() {
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
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("database migrations failed")?;
        let file =
            Some(filename).filter(|f| !f.as_os_str().is_empty() && f.as_os_str() != ":memory:");
        Ok(Self {
            file,
            ..Self::with(Db::Sqlite(pool))
        })
    }

    async fn connect_postgres(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("invalid database URL {:?}", redact(url)))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to database {:?}", redact(url)))?;
        // sqlx takes an advisory lock while it migrates, so instances starting together on an
        // empty database migrate it once.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .context("database migrations failed")?;
        Ok(Self::with(Db::Postgres(pool)))
    }

    fn with(db: Db) -> Self {
        Self {
            turns: matches!(db, Db::Sqlite(_)).then(Arc::default),
            db,
            instance: sync::new_id("instance").into(),
            file: None,
        }
    }

    /// Claims the database for this server process. A SQLite file serves one server: its
    /// events' seqs, its jobs and its sockets live in that one process, so a second server on
    /// the same file is refused with a message that points to PostgreSQL (the CLI's short
    /// commands do not take the lock). PostgreSQL takes any number of servers: None.
    pub fn lock_for_serving(&self) -> anyhow::Result<Option<ServingLock>> {
        let Some(db) = &self.file else {
            return Ok(None);
        };
        let mut path = db.clone().into_os_string();
        path.push(".serving.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", Path::new(&path).display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ServingLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another pfa-sync server is already serving the SQLite database {}; a SQLite \
                 file serves one instance: to run several, put them on PostgreSQL \
                 (--database-url postgres://user@host:port/database)",
                db.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", Path::new(&path).display()))
            }
        }
    }

    /// This process's id among the instances that share the database.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The PostgreSQL pool (None on SQLite), for LISTEN.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A trivial query, for `/health`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_pool!(&self.db, pool, pg => sqlx::query("SELECT 1").execute(pool).await.map(drop)?);
        Ok(())
    }

    /// Closes every connection; later queries fail. Used at shutdown (and by tests to
    /// simulate a database outage).
    pub async fn close(&self) {
        on_pool!(&self.db, pool, pg => pool.close().await)
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// On SQLite, this process's turn to write, for statements that commit on their own;
    /// None on PostgreSQL, whose writers need no turns.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<Heads>> {
        match &self.turns {
            Some(turns) => Some(turns.clone().lock_owned().await),
            None => None,
        }
    }

    /// Begins a transaction. On SQLite it waits for this process's turn to write, then takes
    /// the write lock at once (`BEGIN IMMEDIATE`): every transaction of the store writes, and
    /// one that read first and then had to wait for the lock would fail (its snapshot is older
    /// than the file).
    pub(crate) async fn begin(&self) -> anyhow::Result<Tx<'static>> {
        let turn = self.write_turn().await;
        let inner = match &self.db {
            Db::Sqlite(pool) => {
                TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.context("begin")?)
            }
            Db::Postgres(pool) => TxInner::Postgres(pool.begin().await.context("begin")?),
        };
        Ok(Tx {
            inner,
            turn,
            heads_after: Heads::new(),
        })
    }
}

/// The URL without a password, fit for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Store tests run on both backends: `for_each_store!(name, |store| async { ... })` writes one
/// `#[tokio::test]` per backend, each with a fresh database (a temp SQLite file; a new database
/// in the process's throwaway PostgreSQL cluster).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh, migrated store of `backend`; the folder keeps a SQLite file alive.
    pub async fn fresh(backend: Backend) -> (Option<tempfile::TempDir>, Store) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/t.db", dir.path().display());
                (Some(dir), Store::connect(&url).await.unwrap())
            }
            Backend::Postgres => {
                let cluster = super::throwaway::ThrowawayPostgres::shared().unwrap();
                let url = cluster.fresh_database().await.unwrap();
                (None, Store::connect(&url).await.unwrap())
            }
        }
    }

    macro_rules! for_each_store {
        ($name:ident, |$store:ident| $body:block) => {
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($store: $crate::server::store::Store) $body

                #[tokio::test]
                async fn sqlite() {
                    let (_dir, store) = $crate::server::store::testing::fresh(
                        $crate::server::store::Backend::Sqlite,
                    )
                    .await;
                    run(store).await
                }

                #[tokio::test]
                async fn postgres() {
                    let (_dir, store) = $crate::server::store::testing::fresh(
                        $crate::server::store::Backend::Postgres,
                    )
                    .await;
                    run(store).await
                }
            }
        };
    }
    pub(crate) use for_each_store;
}

#[cfg(test)]
mod tests {
    use super::{testing::for_each_store, *};

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
    }

    for_each_store!(migrations_load_the_two_organizations, |store| {
        store.ping().await.unwrap();
        let orgs: i64 = on_pool!(store.db(), pool, pg => {
            sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(orgs, 2);
    });

    #[tokio::test]
    async fn refuses_other_databases_with_a_clear_message() {
        let err = Store::connect("mysql://x").await.unwrap_err();
        assert!(err.to_string().contains("unsupported database URL"));
    }
}
