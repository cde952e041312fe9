//! PFA records, their history, and drafts.

use super::Store;
use crate::domain::pfa::{Delta, PfaRecord};
use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{Sqlite, Transaction};

/// Filters, search, sorting and paging of the record list.
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    pub search: Option<String>,
    pub category: Option<String>,
    pub source: Option<String>,
    pub dor: Option<String>,
    pub discontinued: Option<bool>,
    /// Only records that have a draft of `drafts_of_user`.
    pub modified_only: bool,
    pub drafts_of_user: i64,
    pub sort: RecordSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordSort {
    #[default]
    PfaId,
    Category,
    ForecastStart,
    ForecastEnd,
    MonthlyRate,
}

impl RecordSort {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pfaId" => Self::PfaId,
            "category" => Self::Category,
            "forecastStart" => Self::ForecastStart,
            "forecastEnd" => Self::ForecastEnd,
            "monthlyRate" => Self::MonthlyRate,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::PfaId => "r.pfa_id",
            Self::Category => "r.category",
            Self::ForecastStart => "r.forecast_start",
            Self::ForecastEnd => "r.forecast_end",
            Self::MonthlyRate => "r.monthly_rate",
        }
    }
}

/// One user's pending change to one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    pub pfa_id: String,
    pub changes: Map<String, Value>,
    pub base_version: i64,
    pub reason: Option<String>,
    pub updated_at: String,
}

/// A draft to save: validated delta against a known base version.
#[derive(Debug, Clone)]
pub struct NewDraft {
    pub pfa_id: String,
    pub delta: Delta,
    pub base_version: i64,
    pub reason: Option<String>,
}

/// One accepted write of a record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub version: i64,
    pub changes: Value,
    pub changed_by: String,
    pub reason: Option<String>,
    pub kind: String,
    pub job_id: Option<String>,
    pub created_at: String,
    #[serde(skip)]
    pub data: String,
}

fn now() -> String {
    crate::protocol::timestamp::format(&chrono::Utc::now())
}

fn search_text(r: &PfaRecord) -> String {
    [
        &r.pfa_id,
        &r.category,
        &r.class,
        &r.manufacturer,
        &r.model,
        &r.equipment,
        &r.area_silo,
        &r.contract,
        &r.notes,
    ]
    .iter()
    .map(|s| s.to_lowercase())
    .collect::<Vec<_>>()
    .join(" ")
}

/// `{field: {from, to}}` for every field that differs, in editable-field terms.
pub fn diff(before: &PfaRecord, after: &PfaRecord) -> Value {
    let mut out = Map::new();
    for field in crate::domain::pfa::EditableField::ALL {
        let (a, b) = (before.get(field), after.get(field));
        if a != b {
            out.insert(
                field.as_str().into(),
                serde_json::json!({ "from": a, "to": b }),
            );
        }
    }
    Value::Object(out)
}

/// The state of a record after an accepted write, and who made it: one `pfa_records` upsert
/// and one `pfa_history` row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRow<'a> {
    /// The state before the write (None: the record is new and its history row has no diff).
    pub before: Option<&'a PfaRecord>,
    pub after: &'a PfaRecord,
    pub changed_by: &'a str,
    pub reason: Option<&'a str>,
    pub kind: &'a str,
    pub job_id: Option<&'a str>,
}

/// Upserts the records of `rows` and appends one history row for each, with two statements
/// whatever their number (rows go in as one JSON array; the sync engine commits its writes in
/// batches).
pub(crate) async fn write_records_tx(
    tx: &mut Transaction<'_, Sqlite>,
    rows: &[RecordRow<'_>],
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut records = Vec::with_capacity(rows.len());
    let mut history = Vec::with_capacity(rows.len());
    for row in rows {
        let r = row.after;
        let data = serde_json::to_string(r)?;
        let changes = match row.before {
            Some(b) => diff(b, r),
            None => Value::Object(Map::new()),
        };
        records.push(serde_json::json!({
            "org": r.organization_id, "pfa": r.pfa_id, "data": data, "category": r.category,
            "source": format!("{:?}", r.source), "dor": format!("{:?}", r.dor),
            "start": r.forecast_start.to_string(), "end": r.forecast_end.to_string(),
            "rate": r.monthly_rate, "discontinued": r.is_discontinued, "search": search_text(r),
            "version": r.version,
        }));
        history.push(serde_json::json!({
            "org": r.organization_id, "pfa": r.pfa_id, "version": r.version, "data": data,
            "changes": changes.to_string(), "by": row.changed_by, "reason": row.reason,
            "kind": row.kind, "job": row.job_id,
        }));
    }
    let now = now();
    sqlx::query(
        "INSERT INTO pfa_records (org_id, pfa_id, data, category, source, dor, forecast_start, forecast_end,
             monthly_rate, is_discontinued, search, version, updated_at)
         SELECT value ->> 'org', value ->> 'pfa', value ->> 'data', value ->> 'category',
             value ->> 'source', value ->> 'dor', value ->> 'start', value ->> 'end', value ->> 'rate',
             value ->> 'discontinued', value ->> 'search', value ->> 'version', ?1
         FROM json_each(?2) WHERE true
         ON CONFLICT (org_id, pfa_id) DO UPDATE SET data = excluded.data, category = excluded.category,
             source = excluded.source, dor = excluded.dor, forecast_start = excluded.forecast_start,
             forecast_end = excluded.forecast_end, monthly_rate = excluded.monthly_rate,
             is_discontinued = excluded.is_discontinued, search = excluded.search,
             version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(&now)
    .bind(Value::Array(records).to_string())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO pfa_history (org_id, pfa_id, version, data, changes, changed_by, reason, kind, job_id, created_at)
         SELECT value ->> 'org', value ->> 'pfa', value ->> 'version', value ->> 'data',
             value ->> 'changes', value ->> 'by', value ->> 'reason', value ->> 'kind', value ->> 'job', ?1
         FROM json_each(?2)",
    )
    .bind(&now)
    .bind(Value::Array(history).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    pub async fn record_count(&self, org: &str) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM pfa_records WHERE org_id = ?")
                .bind(org)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Inserts records that do not exist yet (demo data), each with its first history row.
    pub async fn seed_records(&self, records: &[PfaRecord]) -> anyhow::Result<usize> {
        let mut tx = self.pool().begin().await?;
        let mut inserted = 0;
        for r in records {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM pfa_records WHERE org_id = ? AND pfa_id = ?")
                    .bind(&r.organization_id)
                    .bind(&r.pfa_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                let row = RecordRow {
                    before: None,
                    after: r,
                    changed_by: "demo data",
                    reason: Some("initial import"),
                    kind: "created",
                    job_id: None,
                };
                write_records_tx(&mut tx, &[row]).await?;
                inserted += 1;
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    pub async fn record(&self, org: &str, pfa_id: &str) -> anyhow::Result<Option<PfaRecord>> {
        let data: Option<String> =
            sqlx::query_scalar("SELECT data FROM pfa_records WHERE org_id = ? AND pfa_id = ?")
                .bind(org)
                .bind(pfa_id)
                .fetch_optional(self.pool())
                .await?;
        data.map(|d| serde_json::from_str(&d).context("corrupt record"))
            .transpose()
    }

    /// The records of `org` among `pfa_ids`, by id, read with one query (a 1,000-draft save
    /// made 1,000 round trips to the pool before).
    pub async fn records_by_ids(
        &self,
        org: &str,
        pfa_ids: &[&str],
    ) -> anyhow::Result<std::collections::HashMap<String, PfaRecord>> {
        let ids = serde_json::to_string(pfa_ids).context("serialize ids")?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT pfa_id, data FROM pfa_records
             WHERE org_id = ? AND pfa_id IN (SELECT value FROM json_each(?))",
        )
        .bind(org)
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, data)| Ok((id, serde_json::from_str(&data).context("corrupt record")?)))
            .collect()
    }

    /// A page of records matching `q`, and the total count.
    pub async fn records(
        &self,
        org: &str,
        q: &RecordQuery,
    ) -> anyhow::Result<(Vec<PfaRecord>, i64)> {
        let mut filter = String::from(" FROM pfa_records r WHERE r.org_id = ?");
        let mut binds: Vec<String> = vec![org.to_owned()];
        if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            filter.push_str(" AND r.search LIKE ? ESCAPE '\\'");
            let escaped = s
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            binds.push(format!("%{escaped}%"));
        }
        for (column, value) in [
            ("r.category", &q.category),
            ("r.source", &q.source),
            ("r.dor", &q.dor),
        ] {
            if let Some(v) = value {
                filter.push_str(&format!(" AND {column} = ?"));
                binds.push(v.clone());
            }
        }
        if let Some(d) = q.discontinued {
            filter.push_str(if d {
                " AND r.is_discontinued = 1"
            } else {
                " AND r.is_discontinued = 0"
            });
        }
        if q.modified_only {
            filter.push_str(" AND EXISTS (SELECT 1 FROM drafts d WHERE d.org_id = r.org_id AND d.pfa_id = r.pfa_id AND d.user_id = ?)");
            binds.push(q.drafts_of_user.to_string());
        }
        let count_sql = format!("SELECT COUNT(*){filter}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for b in &binds {
            count = count.bind(b.clone());
        }
        let total = count.fetch_one(self.pool()).await?;
        let order = if q.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT r.data{filter} ORDER BY {} {order}, r.pfa_id ASC LIMIT ? OFFSET ?",
            q.sort.column()
        );
        let mut page = sqlx::query_scalar::<_, String>(&sql);
        for b in &binds {
            page = page.bind(b.clone());
        }
        let rows = page
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(self.pool())
            .await?;
        let records = rows
            .iter()
            .map(|d| serde_json::from_str(d).context("corrupt record"))
            .collect::<anyhow::Result<Vec<PfaRecord>>>()?;
        Ok((records, total))
    }

    pub async fn categories(&self, org: &str) -> anyhow::Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT category FROM pfa_records WHERE org_id = ? ORDER BY category",
        )
        .bind(org)
        .fetch_all(self.pool())
        .await?)
    }

    /// The user's drafts for the given records (all when `pfa_ids` is None).
    pub async fn drafts(
        &self,
        org: &str,
        user_id: i64,
        pfa_ids: Option<&[String]>,
    ) -> anyhow::Result<Vec<Draft>> {
        let rows: Vec<(String, String, i64, Option<String>, String)> = sqlx::query_as(
            "SELECT pfa_id, changes, base_version, reason, updated_at FROM drafts
             WHERE org_id = ? AND user_id = ? ORDER BY pfa_id",
        )
        .bind(org)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .filter(|(pfa_id, ..)| pfa_ids.is_none_or(|ids| ids.contains(pfa_id)))
            .map(|(pfa_id, changes, base_version, reason, updated_at)| {
                Ok(Draft {
                    pfa_id,
                    changes: serde_json::from_str(&changes)?,
                    base_version,
                    reason,
                    updated_at,
                })
            })
            .collect()
    }

    /// Saves drafts all-or-nothing; saving again replaces the user's draft of a record.
    pub async fn save_drafts(
        &self,
        org: &str,
        user_id: i64,
        drafts: &[NewDraft],
    ) -> anyhow::Result<()> {
        let mut tx = self.pool().begin().await?;
        let now = now();
        for d in drafts {
            sqlx::query(
                "INSERT INTO drafts (org_id, pfa_id, user_id, changes, base_version, reason, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (org_id, user_id, pfa_id) DO UPDATE SET changes = excluded.changes,
                     base_version = excluded.base_version, reason = excluded.reason, updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(&d.pfa_id)
            .bind(user_id)
            .bind(Value::Object(d.delta.to_json()).to_string())
            .bind(d.base_version)
            .bind(&d.reason)
            .bind(&now)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops the user's drafts (all when `pfa_ids` is None); returns how many.
    pub async fn discard_drafts(
        &self,
        org: &str,
        user_id: i64,
        pfa_ids: Option<&[String]>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.pool().begin().await?;
        let mut removed = 0;
        match pfa_ids {
            None => {
                removed += sqlx::query("DELETE FROM drafts WHERE org_id = ? AND user_id = ?")
                    .bind(org)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            Some(ids) => {
                for id in ids {
                    removed += sqlx::query(
                        "DELETE FROM drafts WHERE org_id = ? AND user_id = ? AND pfa_id = ?",
                    )
                    .bind(org)
                    .bind(user_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Versions of a record, newest first.
    pub async fn history(&self, org: &str, pfa_id: &str) -> anyhow::Result<Vec<HistoryEntry>> {
        type Row = (
            i64,
            String,
            String,
            Option<String>,
            String,
            Option<String>,
            String,
            String,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT version, changes, changed_by, reason, kind, job_id, created_at, data FROM pfa_history
             WHERE org_id = ? AND pfa_id = ? ORDER BY version DESC",
        )
        .bind(org)
        .bind(pfa_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(
                |(version, changes, changed_by, reason, kind, job_id, created_at, data)| {
                    Ok(HistoryEntry {
                        version,
                        changes: serde_json::from_str(&changes)?,
                        changed_by,
                        reason,
                        kind,
                        job_id,
                        created_at,
                        data,
                    })
                },
            )
            .collect()
    }
}
