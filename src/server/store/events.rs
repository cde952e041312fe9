//! The persisted per-organization event log: the single source of truth of what was published.
//! Events are appended inside the transaction of the state change they report, each with the
//! next seq of its organization (the stored head, advanced in that same transaction), so a
//! committed state change always has its event and a rolled-back one never does. On
//! PostgreSQL the append also NOTIFYs [`NOTIFY_CHANNEL`], which PostgreSQL delivers at commit.

use super::{dialect, on_pool, on_tx, Store, Tx};
use crate::protocol::events::{SyncEvent, SyncEventType};
use anyhow::Context;
use serde_json::{json, Value};

/// The PostgreSQL channel every instance LISTENs on; the payload is `<org> <head> <instance>`:
/// the organization, its head after the commit, and the instance that committed.
pub const NOTIFY_CHANNEL: &str = "pfa_sync_events";

/// One logged event: its seq and the JSON frame exactly as it was sent.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub seq: u64,
    pub payload: String,
}

/// An event as committed: what the hub needs to deliver it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub org: String,
    pub seq: u64,
    pub job_id: String,
    /// SYNC_PROGRESS: a slow socket may skip it for a later one of the same job.
    pub coalescible: bool,
    pub payload: String,
}

/// What the log keeps per organization: the newest `max_events`, none older than `max_age_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_events: u64,
    pub max_age_ms: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A NOTIFY payload read back: (organization, head, instance).
pub fn parse_notification(payload: &str) -> Option<(&str, u64, &str)> {
    let mut parts = payload.split(' ');
    let org = parts.next()?;
    let head = parts.next()?.parse().ok()?;
    let instance = parts.next()?;
    parts.next().is_none().then_some((org, head, instance))
}

impl Tx<'_> {
    /// Appends `events` (organization, event) to the log with the next seqs of their
    /// organizations, in order, advancing each organization's head; sets each event's `seq`
    /// and `organizationId`. Organizations are taken in name order, so two transactions that
    /// append to the same organizations lock their heads in the same order.
    pub(crate) async fn append_events(
        &mut self,
        events: Vec<(String, SyncEvent)>,
        instance: &str,
    ) -> anyhow::Result<Vec<Committed>> {
        let mut by_org: std::collections::BTreeMap<String, Vec<SyncEvent>> = Default::default();
        for (org, event) in events {
            by_org.entry(org).or_default().push(event);
        }
        let created_at = now_ms();
        let mut committed = Vec::new();
        for (org, events) in by_org {
            let count = events.len() as i64;
            let head: i64 = on_tx!(self, t, pg => {
                sqlx::query_scalar(
                    "INSERT INTO event_heads (org_id, head) VALUES ($1, $2)
                     ON CONFLICT (org_id) DO UPDATE SET head = event_heads.head + excluded.head
                     RETURNING head",
                )
                .bind(&org)
                .bind(count)
                .fetch_one(&mut **t)
                .await
                .with_context(|| format!("advance the event head of {org}"))?
            });
            let first = (head - count + 1) as u64;
            let mut rows = Vec::with_capacity(events.len());
            for (i, mut event) in events.into_iter().enumerate() {
                let seq = first + i as u64;
                event.seq = Some(seq);
                event.organization_id = Some(org.clone());
                let payload = serde_json::to_string(&event).context("serialize event")?;
                rows.push(json!({ "seq": seq, "kind": event.kind.as_str(),
                                  "job": event.job_id, "payload": payload }));
                committed.push(Committed {
                    org: org.clone(),
                    seq,
                    coalescible: event.kind.is_coalescible(),
                    job_id: event.job_id,
                    payload,
                });
            }
            on_tx!(self, t, pg => {
                sqlx::query(dialect(
                    pg,
                    "INSERT INTO events (org_id, seq, kind, job_id, payload, created_at)
                     SELECT $1, value ->> 'seq', value ->> 'kind', value ->> 'job', value ->> 'payload', $2
                     FROM json_each($3)",
                    "INSERT INTO events (org_id, seq, kind, job_id, payload, created_at)
                     SELECT $1, (value ->> 'seq')::bigint, value ->> 'kind', value ->> 'job', value ->> 'payload', $2
                     FROM jsonb_array_elements($3::jsonb)",
                ))
                .bind(&org)
                .bind(created_at)
                .bind(Value::Array(rows).to_string())
                .execute(&mut **t)
                .await
                .context("append to the event log")?;
            });
            self.notify(NOTIFY_CHANNEL, &format!("{org} {head} {instance}"))
                .await?;
        }
        Ok(committed)
    }
}

impl Store {
    /// Appends `events` in a transaction of their own (the publish API: the event is the
    /// whole state change).
    pub async fn append_events(
        &self,
        events: Vec<(String, SyncEvent)>,
    ) -> anyhow::Result<Vec<Committed>> {
        let mut tx = self.begin().await?;
        let committed = tx.append_events(events, self.instance()).await?;
        tx.commit().await?;
        Ok(committed)
    }

    /// The organization's head seq: the last one assigned (0 when it has none).
    pub async fn latest_seq(&self, org: &str) -> anyhow::Result<u64> {
        let head: Option<i64> = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT head FROM event_heads WHERE org_id = $1")
                .bind(org)
                .fetch_optional(pool)
                .await?
        });
        Ok(head.unwrap_or(0) as u64)
    }

    /// The oldest seq still within retention for an org whose latest seq is `head`
    /// (None when nothing is retained).
    pub async fn oldest_retained_seq(
        &self,
        org: &str,
        head: u64,
        retention: Retention,
        now_ms: i64,
    ) -> anyhow::Result<Option<u64>> {
        let floor = head.saturating_sub(retention.max_events) as i64;
        let seq: Option<i64> = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar(
                "SELECT MIN(seq) FROM events WHERE org_id = $1 AND seq > $2 AND created_at >= $3",
            )
            .bind(org)
            .bind(floor)
            .bind(now_ms - retention.max_age_ms)
            .fetch_one(pool)
            .await?
        });
        Ok(seq.map(|s| s as u64))
    }

    /// Events with `after < seq <= upto`, in order, at most `limit`.
    pub async fn events_between(
        &self,
        org: &str,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<LoggedEvent>> {
        let rows: Vec<(i64, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT seq, payload FROM events WHERE org_id = $1 AND seq > $2 AND seq <= $3
                 ORDER BY seq LIMIT $4",
            )
            .bind(org)
            .bind(after as i64)
            .bind(upto as i64)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(seq, payload)| LoggedEvent {
                seq: seq as u64,
                payload,
            })
            .collect())
    }

    /// The committed events of `org` after `after`, in seq order, at most `limit`: how a hub
    /// fills a gap or catches up.
    pub async fn committed_after(
        &self,
        org: &str,
        after: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<Committed>> {
        let rows: Vec<(i64, String, String, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT seq, kind, job_id, payload FROM events WHERE org_id = $1 AND seq > $2
                 ORDER BY seq LIMIT $3",
            )
            .bind(org)
            .bind(after as i64)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(seq, kind, job_id, payload)| Committed {
                org: org.to_owned(),
                seq: seq as u64,
                coalescible: SyncEventType::parse(&kind).is_some_and(SyncEventType::is_coalescible),
                job_id,
                payload,
            })
            .collect())
    }

    /// The organizations that have a head (every one that ever had an event).
    pub async fn orgs_with_events(&self) -> anyhow::Result<Vec<String>> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT org_id FROM event_heads ORDER BY org_id")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Deletes what retention no longer keeps (the head stays); returns the rows removed. Two
    /// statements, each along an index (by seq, by age), in a transaction of its own.
    pub async fn prune_events(
        &self,
        org: &str,
        retention: Retention,
        now_ms: i64,
    ) -> anyhow::Result<u64> {
        let mut tx = self.begin().await?;
        let removed = on_tx!(&mut tx, t, pg => {
            let head: Option<i64> =
                sqlx::query_scalar("SELECT head FROM event_heads WHERE org_id = $1")
                    .bind(org)
                    .fetch_optional(&mut **t)
                    .await?;
            let floor = head.unwrap_or(0) - retention.max_events as i64;
            let by_count = sqlx::query("DELETE FROM events WHERE org_id = $1 AND seq <= $2")
                .bind(org)
                .bind(floor)
                .execute(&mut **t)
                .await?
                .rows_affected();
            let by_age = sqlx::query("DELETE FROM events WHERE created_at < $1 AND org_id = $2")
                .bind(now_ms - retention.max_age_ms)
                .bind(org)
                .execute(&mut **t)
                .await?
                .rows_affected();
            by_count + by_age
        });
        tx.commit().await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{protocol::events::SyncEventType, server::store::testing::for_each_store};

    fn event(job: &str) -> SyncEvent {
        SyncEvent::new(SyncEventType::SyncProgress, job)
    }

    for_each_store!(
        seqs_continue_from_the_stored_head_after_the_log_is_pruned_empty,
        |store| {
            let rio = |job: &str| ("org-rio".to_owned(), event(job));
            let first = store.append_events(vec![rio("a"), rio("b")]).await.unwrap();
            assert_eq!(first.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
            assert!(
                first[1].payload.contains("\"seq\":2"),
                "{}",
                first[1].payload
            );
            // Everything is older than an age limit of -1 ms: the log is emptied, the head kept.
            let all = Retention {
                max_events: 10,
                max_age_ms: -1,
            };
            assert_eq!(
                store.prune_events("org-rio", all, now_ms()).await.unwrap(),
                2
            );
            assert_eq!(store.latest_seq("org-rio").await.unwrap(), 2);
            let next = store.append_events(vec![rio("c")]).await.unwrap();
            assert_eq!(next[0].seq, 3, "a seq is never given twice");
            let logged = store.events_between("org-rio", 0, 10, 10).await.unwrap();
            assert_eq!(logged.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        }
    );

    for_each_store!(
        events_of_several_orgs_get_their_own_seqs_in_order,
        |store| {
            let batch = vec![
                ("org-rio".to_owned(), event("r1")),
                ("org-portarthur".to_owned(), event("p1")),
                ("org-rio".to_owned(), event("r2")),
            ];
            let committed = store.append_events(batch).await.unwrap();
            let seqs: Vec<(&str, u64, &str)> = committed
                .iter()
                .map(|c| (c.org.as_str(), c.seq, c.job_id.as_str()))
                .collect();
            assert_eq!(
                seqs,
                [
                    ("org-portarthur", 1, "p1"),
                    ("org-rio", 1, "r1"),
                    ("org-rio", 2, "r2")
                ]
            );
            let read = store.committed_after("org-rio", 1, 10).await.unwrap();
            assert_eq!((read.len(), read[0].seq, read[0].coalescible), (1, 2, true));
        }
    );

    for_each_store!(a_rolled_back_append_leaves_neither_event_nor_seq, |store| {
        let mut tx = store.begin().await.unwrap();
        tx.append_events(vec![("org-rio".to_owned(), event("x"))], "test")
            .await
            .unwrap();
        drop(tx);
        assert_eq!(store.latest_seq("org-rio").await.unwrap(), 0);
        let next = store
            .append_events(vec![("org-rio".to_owned(), event("y"))])
            .await
            .unwrap();
        assert_eq!(next[0].seq, 1);
    });

    #[test]
    fn notifications_read_back_what_the_append_writes() {
        assert_eq!(
            parse_notification("org-rio 42 instance-ab"),
            Some(("org-rio", 42, "instance-ab"))
        );
        assert_eq!(parse_notification("org-rio x instance-ab"), None);
        assert_eq!(parse_notification("org-rio 42"), None);
    }

    for_each_store!(retention_by_count_keeps_the_newest, |store| {
        let batch: Vec<_> = (0..5)
            .map(|i| ("org-rio".to_owned(), event(&format!("j{i}"))))
            .collect();
        store.append_events(batch).await.unwrap();
        let keep_two = Retention {
            max_events: 2,
            max_age_ms: 3_600_000,
        };
        store
            .prune_events("org-rio", keep_two, now_ms())
            .await
            .unwrap();
        let oldest = store
            .oldest_retained_seq("org-rio", 5, keep_two, now_ms())
            .await
            .unwrap();
        assert_eq!(oldest, Some(4));
    });
}
