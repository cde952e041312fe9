//! The answers of sync commands, shared by every instance: a command sent again (a client that
//! reconnected, to this instance or another) gets its first answer and changes nothing. An
//! answer belongs to its sender and to what was asked ([`CommandKey`]), and only a command that
//! was applied is recorded, in the transaction of its state change: a refusal is decided anew,
//! so nobody's refused command id stands in the way of another member's command.

use super::{on_pool, on_tx, Store, Tx};
use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Answers kept per user (the oldest go first); with the ids' length limits
/// (`ClientCommand::parse`) and answers written by the server, at most about 1 KiB each.
pub const ANSWERS_PER_USER: i64 = 1000;

/// What COMMAND_RESULT says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAnswer {
    pub ok: bool,
    pub message: String,
}

/// Which command an answer belongs to: the same id from another member, for another job or
/// with another command is another command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandKey {
    pub org: String,
    pub user_id: i64,
    pub command_id: String,
    /// The command's wire name, e.g. `PAUSE_SYNC`.
    pub command: &'static str,
    pub job_id: String,
}

/// A command's answer, to record once.
#[derive(Debug, Clone)]
pub struct CommandRecord {
    pub key: CommandKey,
    pub answer: CommandAnswer,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Tx<'_> {
    /// Records an answer and forgets the sender's oldest beyond [`ANSWERS_PER_USER`]; fails
    /// (and with it the transaction) when the command already has one.
    pub(crate) async fn insert_command(&mut self, record: &CommandRecord) -> anyhow::Result<()> {
        let key = &record.key;
        on_tx!(self, t, pg => {
            sqlx::query(
                "INSERT INTO command_results (org_id, user_id, command_id, command, job_id, answer, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&key.org)
            .bind(key.user_id)
            .bind(&key.command_id)
            .bind(key.command)
            .bind(&key.job_id)
            .bind(serde_json::to_string(&record.answer)?)
            .bind(now_ms())
            .execute(&mut **t)
            .await
            .context("record the command's answer")?;
            sqlx::query(
                "DELETE FROM command_results WHERE user_id = $1 AND created_at < (
                     SELECT created_at FROM command_results WHERE user_id = $1
                     ORDER BY created_at DESC LIMIT 1 OFFSET $2)",
            )
            .bind(key.user_id)
            .bind(ANSWERS_PER_USER - 1)
            .execute(&mut **t)
            .await
            .context("forget the sender's oldest command answers")?;
        });
        Ok(())
    }
}

impl Store {
    /// The recorded answer of a command, if it was applied.
    pub async fn command_answer(&self, key: &CommandKey) -> anyhow::Result<Option<CommandAnswer>> {
        let answer: Option<String> = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar(
                "SELECT answer FROM command_results
                 WHERE org_id = $1 AND user_id = $2 AND command_id = $3 AND command = $4 AND job_id = $5",
            )
            .bind(&key.org)
            .bind(key.user_id)
            .bind(&key.command_id)
            .bind(key.command)
            .bind(&key.job_id)
            .fetch_optional(pool)
            .await?
        });
        answer
            .map(|a| serde_json::from_str(&a).context("corrupt command answer"))
            .transpose()
    }

    /// How many command answers are kept (all organizations).
    pub async fn command_answers_kept(&self) -> anyhow::Result<u64> {
        let count: i64 = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT COUNT(*) FROM command_results")
                .fetch_one(pool)
                .await?
        });
        Ok(count as u64)
    }

    /// Forgets answers older than `max_age_ms`; returns how many.
    pub async fn prune_commands(&self, max_age_ms: i64) -> anyhow::Result<u64> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query("DELETE FROM command_results WHERE created_at < $1")
                .bind(now_ms() - max_age_ms)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::testing::for_each_store;

    fn key(user_id: i64, command_id: &str, command: &'static str, job_id: &str) -> CommandKey {
        CommandKey {
            org: "org-rio".into(),
            user_id,
            command_id: command_id.into(),
            command,
            job_id: job_id.into(),
        }
    }

    async fn record(store: &Store, key: &CommandKey, message: &str) -> anyhow::Result<()> {
        let mut tx = store.begin().await?;
        tx.insert_command(&CommandRecord {
            key: key.clone(),
            answer: CommandAnswer {
                ok: true,
                message: message.into(),
            },
        })
        .await?;
        tx.commit().await
    }

    for_each_store!(
        a_command_is_answered_once_for_its_sender_command_and_job,
        |store| {
            let ann = store.create_user("ann", "x", &[]).await.unwrap();
            let bob = store.create_user("bob", "x", &[]).await.unwrap();
            let pause = key(ann, "c-1", "PAUSE_SYNC", "job-1");
            assert_eq!(store.command_answer(&pause).await.unwrap(), None);
            record(&store, &pause, "paused").await.unwrap();
            assert!(
                record(&store, &pause, "again").await.is_err(),
                "a second answer for the same command fails its transaction"
            );
            assert_eq!(
                store.command_answer(&pause).await.unwrap().unwrap().message,
                "paused"
            );
            for other in [
                key(bob, "c-1", "PAUSE_SYNC", "job-1"),
                key(ann, "c-1", "RESUME_SYNC", "job-1"),
                key(ann, "c-1", "PAUSE_SYNC", "job-2"),
                CommandKey {
                    org: "org-portarthur".into(),
                    ..pause.clone()
                },
            ] {
                assert_eq!(
                    store.command_answer(&other).await.unwrap(),
                    None,
                    "{other:?}"
                );
            }
            assert_eq!(store.command_answers_kept().await.unwrap(), 1);
            assert_eq!(store.prune_commands(-1_000).await.unwrap(), 1);
        }
    );

    for_each_store!(a_sender_keeps_a_bounded_number_of_answers, |store| {
        let ann = store.create_user("ann", "x", &[]).await.unwrap();
        let bob = store.create_user("bob", "x", &[]).await.unwrap();
        record(&store, &key(bob, "b-1", "PAUSE_SYNC", "job-1"), "paused")
            .await
            .unwrap();
        let total = ANSWERS_PER_USER + 5;
        for n in 0..total {
            record(
                &store,
                &key(ann, &format!("c-{n}"), "PAUSE_SYNC", "job-1"),
                "paused",
            )
            .await
            .unwrap();
            // Distinct creation times, so that "oldest" is well defined.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let kept = store.command_answers_kept().await.unwrap();
        assert_eq!(
            kept,
            ANSWERS_PER_USER as u64 + 1,
            "ann's newest and bob's one"
        );
        assert_eq!(
            store
                .command_answer(&key(ann, "c-0", "PAUSE_SYNC", "job-1"))
                .await
                .unwrap(),
            None,
            "the oldest went first"
        );
        assert!(store
            .command_answer(&key(
                ann,
                &format!("c-{}", total - 1),
                "PAUSE_SYNC",
                "job-1"
            ))
            .await
            .unwrap()
            .is_some());
        assert!(store
            .command_answer(&key(bob, "b-1", "PAUSE_SYNC", "job-1"))
            .await
            .unwrap()
            .is_some());
    });
}
