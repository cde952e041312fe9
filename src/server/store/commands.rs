//! The answers of sync commands by command id, shared by every instance: a command sent again
//! (a client that reconnected, to this instance or another) gets its first answer and changes
//! nothing. A successful command's answer is recorded in the transaction of its state change.

use super::{on_pool, on_tx, Store, Tx};
use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What COMMAND_RESULT says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAnswer {
    pub ok: bool,
    pub message: String,
}

/// A command's answer, to record once.
#[derive(Debug, Clone)]
pub struct CommandRecord {
    pub org: String,
    pub command_id: String,
    pub answer: CommandAnswer,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Tx<'_> {
    /// Records an answer; fails (and with it the transaction) when the command already has one.
    pub(crate) async fn insert_command(&mut self, record: &CommandRecord) -> anyhow::Result<()> {
        on_tx!(self, t, pg => {
            sqlx::query(
                "INSERT INTO command_results (org_id, command_id, answer, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&record.org)
            .bind(&record.command_id)
            .bind(serde_json::to_string(&record.answer)?)
            .bind(now_ms())
            .execute(&mut **t)
            .await
            .context("record the command's answer")?;
        });
        Ok(())
    }
}

impl Store {
    /// The recorded answer of a command, if it has one.
    pub async fn command_answer(
        &self,
        org: &str,
        command_id: &str,
    ) -> anyhow::Result<Option<CommandAnswer>> {
        let answer: Option<String> = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar(
                "SELECT answer FROM command_results WHERE org_id = $1 AND command_id = $2",
            )
            .bind(org)
            .bind(command_id)
            .fetch_optional(pool)
            .await?
        });
        answer
            .map(|a| serde_json::from_str(&a).context("corrupt command answer"))
            .transpose()
    }

    /// Records an answer that changed nothing (a refusal); when the command was answered
    /// meanwhile, that first answer is kept and returned.
    pub async fn record_command(&self, record: &CommandRecord) -> anyhow::Result<CommandAnswer> {
        on_pool!(self.db(), pool, pg => {
            sqlx::query(
                "INSERT INTO command_results (org_id, command_id, answer, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (org_id, command_id) DO NOTHING",
            )
            .bind(&record.org)
            .bind(&record.command_id)
            .bind(serde_json::to_string(&record.answer)?)
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        Ok(self
            .command_answer(&record.org, &record.command_id)
            .await?
            .unwrap_or_else(|| record.answer.clone()))
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

    for_each_store!(a_command_is_answered_once, |store| {
        let record = |ok: bool, message: &str| CommandRecord {
            org: "org-rio".into(),
            command_id: "c-1".into(),
            answer: CommandAnswer {
                ok,
                message: message.into(),
            },
        };
        assert_eq!(store.command_answer("org-rio", "c-1").await.unwrap(), None);
        let mut tx = store.begin().await.unwrap();
        tx.insert_command(&record(true, "paused")).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(tx.insert_command(&record(true, "again")).await.is_err());
        drop(tx);
        let kept = store
            .record_command(&record(false, "refused"))
            .await
            .unwrap();
        assert_eq!(
            kept,
            CommandAnswer {
                ok: true,
                message: "paused".into()
            }
        );
        assert_eq!(store.prune_commands(-1_000).await.unwrap(), 1);
    });
}
