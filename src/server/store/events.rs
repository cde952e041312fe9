//! The persisted per-organization event log: the single source of truth of what was published.
//! Events are appended inside the transaction of the state change they report, each with the
//! next seq of its organization (the stored head, advanced in that same transaction), so a
//! committed state change always has its event and a rolled-back one never does. On
//! PostgreSQL the append also NOTIFYs [`NOTIFY_CHANNEL`], which PostgreSQL delivers at commit.
//! On SQLite, whose file one process serves, the process assigns seqs from the heads it holds
//! (see [`super::Heads`]) and the log's triggers advance the stored head with the rows, so an
//! append is one statement.

use super::{on_pool, Db, Store, Tx, TxInner};
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

/// Events grouped by organization, organizations in name order.
fn by_org(events: Vec<(String, SyncEvent)>) -> std::collections::BTreeMap<String, Vec<SyncEvent>> {
    let mut by_org: std::collections::BTreeMap<String, Vec<SyncEvent>> = Default::default();
    for (org, event) in events {
        by_org.entry(org).or_default().push(event);
    }
    by_org
}

/// Events of one organization serialized once, around their seqs: an event's frame is
/// `prefix`, its seq, `suffix` (its organization), byte for byte what serde writes for the
/// event with both set, as they are its last two fields. So the seqs can be given in SQL
/// (PostgreSQL) or after a stale head was read again (SQLite) without serializing again.
struct Framed {
    org: String,
    suffix: String,
    events: Vec<(SyncEvent, String)>,
}

impl Framed {
    fn new(org: String, events: Vec<SyncEvent>) -> anyhow::Result<Self> {
        let suffix = format!(",\"organizationId\":{}}}", serde_json::to_string(&org)?);
        let events = events
            .into_iter()
            .map(|mut event| {
                event.seq = None;
                event.organization_id = None;
                let mut prefix = serde_json::to_string(&event).context("serialize event")?;
                prefix.pop(); // the closing brace: seq and organization follow
                prefix.push_str(",\"seq\":");
                Ok((event, prefix))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            org,
            suffix,
            events,
        })
    }

    /// The JSON array of log rows the append statement reads: kind, job, and the payload
    /// with its seq from `first` on (or its prefix when `first` is None: seqs given in SQL).
    fn rows(&self, first: Option<u64>) -> String {
        let rows = self.events.iter().enumerate().map(|(i, (event, prefix))| {
            let payload = match first {
                Some(first) => json!(self.payload(prefix, first + i as u64)),
                None => json!(prefix),
            };
            json!({ "kind": event.kind.as_str(), "job": event.job_id, "payload": payload })
        });
        Value::Array(rows.collect()).to_string()
    }

    fn payload(&self, prefix: &str, seq: u64) -> String {
        format!("{prefix}{seq}{}", self.suffix)
    }

    /// The events as committed with the seqs from `first` on.
    fn committed(self, first: u64) -> Vec<Committed> {
        let mut committed = Vec::with_capacity(self.events.len());
        for (i, (event, prefix)) in self.events.iter().enumerate() {
            let seq = first + i as u64;
            committed.push(Committed {
                org: self.org.clone(),
                seq,
                coalescible: event.kind.is_coalescible(),
                job_id: event.job_id.clone(),
                payload: self.payload(prefix, seq),
            });
        }
        committed
    }
}

/// The SQLite triggers' refusal of a seq at or below the stored head (a stale head).
fn is_stale_head(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|e| e.message().contains("at or below the organization's head"))
}

/// SQLite: appends `events` on `conn` (in a transaction or on its own, where the one
/// statement commits by itself) from the head `known` (read from the database when None or
/// when the triggers refuse it as stale); returns the new head and the events as committed.
async fn append_sqlite(
    conn: &mut sqlx::SqliteConnection,
    known: Option<u64>,
    events: Framed,
    created_at: i64,
) -> anyhow::Result<(u64, Vec<Committed>)> {
    async fn stored_head(conn: &mut sqlx::SqliteConnection, org: &str) -> anyhow::Result<u64> {
        let head: Option<i64> =
            sqlx::query_scalar("SELECT head FROM event_heads WHERE org_id = $1")
                .bind(org)
                .fetch_optional(conn)
                .await
                .with_context(|| format!("read the event head of {org}"))?;
        Ok(head.unwrap_or(0) as u64)
    }
    let org = events.org.as_str();
    let mut head = match known {
        Some(head) => head,
        None => stored_head(conn, org).await?,
    };
    let mut retried = false;
    loop {
        let inserted = sqlx::query(
            "INSERT INTO events (org_id, seq, kind, job_id, payload, created_at)
             SELECT $1, $2 + key, value ->> 'kind', value ->> 'job', value ->> 'payload', $3
             FROM json_each($4)",
        )
        .bind(org)
        .bind((head + 1) as i64)
        .bind(created_at)
        .bind(events.rows(Some(head + 1)))
        .execute(&mut *conn)
        .await;
        match inserted {
            Ok(_) => {
                let appended = events.events.len() as u64;
                return Ok((head + appended, events.committed(head + 1)));
            }
            Err(e) if !retried && is_stale_head(&e) => {
                tracing::warn!(
                    org,
                    head,
                    "the event head held in memory was stale; read again"
                );
                head = stored_head(conn, org).await?;
                retried = true;
            }
            Err(e) => return Err(e).context("append to the event log"),
        }
    }
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
        let created_at = now_ms();
        let mut committed = Vec::new();
        for (org, events) in by_org(events) {
            let events = Framed::new(org, events)?;
            match &mut self.inner {
                TxInner::Sqlite(t) => {
                    let heads = self
                        .turn
                        .as_ref()
                        .expect("a SQLite transaction holds the turn");
                    let org = events.org.clone();
                    let known = self
                        .heads_after
                        .get(&org)
                        .or_else(|| heads.get(&org))
                        .copied();
                    let (head, mut appended) = append_sqlite(t, known, events, created_at).await?;
                    self.heads_after.insert(org, head);
                    committed.append(&mut appended);
                }
                TxInner::Postgres(t) => {
                    // The head advanced, the rows with their seqs and the NOTIFY (delivered at
                    // commit) in one round trip.
                    let count = events.events.len() as i64;
                    let head: i64 = sqlx::query_scalar(
                        "WITH head AS (
                             INSERT INTO event_heads (org_id, head) VALUES ($1, $2)
                             ON CONFLICT (org_id) DO UPDATE SET head = event_heads.head + excluded.head
                             RETURNING head
                         ), appended AS (
                             INSERT INTO events (org_id, seq, kind, job_id, payload, created_at)
                             SELECT $1, head.head - $2 + e.ord, e.value ->> 'kind', e.value ->> 'job',
                                    (e.value ->> 'payload') || (head.head - $2 + e.ord) || $4, $3
                             FROM head, jsonb_array_elements($5::jsonb) WITH ORDINALITY AS e(value, ord)
                         )
                         SELECT head FROM head, pg_notify($6, $1 || ' ' || head.head || ' ' || $7)",
                    )
                    .bind(&events.org)
                    .bind(count)
                    .bind(created_at)
                    .bind(&events.suffix)
                    .bind(events.rows(None))
                    .bind(NOTIFY_CHANNEL)
                    .bind(instance)
                    .fetch_one(&mut **t)
                    .await
                    .with_context(|| format!("append to the event log of {}", events.org))?;
                    committed.append(&mut events.committed((head - count + 1) as u64));
                }
            }
        }
        Ok(committed)
    }
}

impl Store {
    /// Appends `events` in a transaction of their own (the publish API: the event is the
    /// whole state change). On SQLite, events of one organization are the one statement of the
    /// append, which commits by itself.
    pub async fn append_events(
        &self,
        events: Vec<(String, SyncEvent)>,
    ) -> anyhow::Result<Vec<Committed>> {
        let one_org = events.windows(2).all(|w| w[0].0 == w[1].0);
        if let (Db::Sqlite(pool), Some(turns), true, Some(org)) = (
            self.db(),
            &self.turns,
            one_org,
            events.first().map(|(org, _)| org.clone()),
        ) {
            let mut heads = turns.lock().await;
            let mut conn = pool.acquire().await.context("acquire a connection")?;
            let events = Framed::new(
                org.clone(),
                events.into_iter().map(|(_, event)| event).collect(),
            )?;
            let known = heads.get(&org).copied();
            return match append_sqlite(&mut conn, known, events, now_ms()).await {
                Ok((head, committed)) => {
                    heads.insert(org, head);
                    Ok(committed)
                }
                Err(e) => {
                    heads.remove(&org);
                    Err(e)
                }
            };
        }
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

    /// Events with `after < seq <= upto`, in order: at most `limit`, and no more than the
    /// first that reach `max_bytes` of payload (always at least one).
    pub async fn events_between(
        &self,
        org: &str,
        after: u64,
        upto: u64,
        limit: u32,
        max_bytes: usize,
    ) -> anyhow::Result<Vec<LoggedEvent>> {
        let rows: Vec<(i64, String)> = on_pool!(self.db(), pool, pg => {
            let bytes = if pg { "octet_length(payload)" } else { "length(CAST(payload AS BLOB))" };
            sqlx::query_as(&format!(
                "SELECT seq, payload FROM (
                     SELECT seq, payload, SUM({bytes}) OVER (ORDER BY seq) - {bytes} AS before
                     FROM (SELECT seq, payload FROM events WHERE org_id = $1 AND seq > $2 AND seq <= $3
                           ORDER BY seq LIMIT $4) AS first_rows
                 ) AS page WHERE before < $5 ORDER BY seq"
            ))
            .bind(org)
            .bind(after as i64)
            .bind(upto as i64)
            .bind(i64::from(limit))
            .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
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
    /// statements, each along an index (by seq, by age), each complete on its own: no
    /// transaction, so on SQLite the turn is held for two round trips, not five.
    pub async fn prune_events(
        &self,
        org: &str,
        retention: Retention,
        now_ms: i64,
    ) -> anyhow::Result<u64> {
        let _turn = self.write_turn().await;
        let removed = on_pool!(self.db(), pool, pg => {
            let by_count = sqlx::query(
                "DELETE FROM events WHERE org_id = $1
                 AND seq <= (SELECT head FROM event_heads WHERE org_id = $1) - $2",
            )
            .bind(org)
            .bind(i64::try_from(retention.max_events).unwrap_or(i64::MAX))
            .execute(pool)
            .await?
            .rows_affected();
            let by_age = sqlx::query("DELETE FROM events WHERE created_at < $1 AND org_id = $2")
                .bind(now_ms - retention.max_age_ms)
                .bind(org)
                .execute(pool)
                .await?
                .rows_affected();
            by_count + by_age
        });
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
            let logged = store
                .events_between("org-rio", 0, 10, 10, usize::MAX)
                .await
                .unwrap();
            assert_eq!(logged.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        }
    );

    for_each_store!(a_page_of_events_stops_at_its_byte_bound, |store| {
        let batch = (0..5)
            .map(|n| ("org-rio".to_owned(), event(&format!("job-{n}"))))
            .collect();
        store.append_events(batch).await.unwrap();
        let all = store
            .events_between("org-rio", 0, 10, 10, usize::MAX)
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        let seqs = |page: Vec<LoggedEvent>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
        let page = |max_bytes| store.events_between("org-rio", 0, 10, 10, max_bytes);
        assert_eq!(seqs(page(1).await.unwrap()), [1], "at least one");
        let two = all[0].payload.len() + 1;
        assert_eq!(seqs(page(two).await.unwrap()), [1, 2]);
        let three = all[0].payload.len() + all[1].payload.len() + 1;
        assert_eq!(seqs(page(three).await.unwrap()), [1, 2, 3]);
        assert_eq!(
            seqs(
                store
                    .events_between("org-rio", 2, 10, 2, usize::MAX)
                    .await
                    .unwrap()
            ),
            [3, 4],
            "the count bound still holds"
        );
    });

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
        let rio = |job: &str| vec![("org-rio".to_owned(), event(job))];
        assert_eq!(store.append_events(rio("w")).await.unwrap()[0].seq, 1);
        let mut tx = store.begin().await.unwrap();
        let appended = tx.append_events(rio("x"), "test").await.unwrap();
        let again = tx.append_events(rio("x2"), "test").await.unwrap();
        assert_eq!((appended[0].seq, again[0].seq), (2, 3));
        drop(tx);
        assert_eq!(store.latest_seq("org-rio").await.unwrap(), 1);
        let next = store.append_events(rio("y")).await.unwrap();
        assert_eq!(next[0].seq, 2);
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.append_events(rio("z"), "test").await.unwrap()[0].seq, 3);
        tx.commit().await.unwrap();
        assert_eq!(store.append_events(rio("z2")).await.unwrap()[0].seq, 4);
        let logged = store
            .events_between("org-rio", 0, 10, 10, usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            logged.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
    });

    /// SQLite's heads live in the serving process; a second process on the file (which the
    /// serving lock keeps from serving, but a test or a tool may open) makes them stale, and
    /// the log's triggers refuse the stale seq instead of giving it twice.
    #[tokio::test]
    async fn a_stale_head_held_in_memory_is_read_again_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let (a, b) = (
            Store::connect(&url).await.unwrap(),
            Store::connect(&url).await.unwrap(),
        );
        let rio = |job: &str| vec![("org-rio".to_owned(), event(job))];
        assert_eq!(a.append_events(rio("a1")).await.unwrap()[0].seq, 1);
        assert_eq!(b.append_events(rio("b1")).await.unwrap()[0].seq, 2);
        assert_eq!(a.append_events(rio("a2")).await.unwrap()[0].seq, 3);
        let mut tx = b.begin().await.unwrap();
        let appended = tx.append_events(rio("b2"), "test").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(appended[0].seq, 4);
        assert!(
            appended[0].payload.contains("\"seq\":4"),
            "{}",
            appended[0].payload
        );
        let logged = a
            .events_between("org-rio", 0, 10, 10, usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            logged.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(a.latest_seq("org-rio").await.unwrap(), 4);
    }

    #[test]
    fn a_frame_assembled_around_its_seq_is_what_serde_writes() {
        let mut with_data = event("j1");
        with_data.pfa_id = Some("PFA-1".into());
        with_data.message = Some("a \"quoted\" },\"seq\": note".into());
        with_data.data = Some(
            json!({ "synced": 3, "nested": { "seq": 1 } })
                .as_object()
                .unwrap()
                .clone(),
        );
        let framed = Framed::new("org-\"rio\"".into(), vec![event("j0"), with_data]).unwrap();
        let committed = Framed::new(
            framed.org.clone(),
            framed.events.iter().map(|e| e.0.clone()).collect(),
        )
        .unwrap()
        .committed(41);
        for ((mut event, _), c) in framed.events.into_iter().zip(&committed) {
            event.seq = Some(c.seq);
            event.organization_id = Some(framed.org.clone());
            assert_eq!(c.payload, serde_json::to_string(&event).unwrap());
            let read: SyncEvent = serde_json::from_str(&c.payload).unwrap();
            assert_eq!(
                (read.seq, read.organization_id),
                (event.seq, event.organization_id)
            );
        }
        assert_eq!((committed[0].seq, committed[1].seq), (41, 42));
    }

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
