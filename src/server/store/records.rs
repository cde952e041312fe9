//! PFA records, their history, and drafts.

use super::{dialect, on_pool, on_tx, Store, Tx};
use crate::domain::pfa::{Delta, PfaRecord};
use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};

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

/// The SQL that reads the elements of a JSON array bound as `$n` (each as `value`).
pub(crate) fn json_rows(pg: bool, n: u8) -> String {
    if pg {
        format!("jsonb_array_elements(${n}::jsonb)")
    } else {
        format!("json_each(${n})")
    }
}

/// The condition "`column` is one of the strings of the JSON array bound as `$n`". PostgreSQL
/// reads the array once into an array value (`= ANY(ARRAY(...))`): written as an `IN`
/// subquery, its planner, misjudging the array's size on a freshly filled table, joined it with
/// a scan of the whole table (12.6 s to delete 10,000 drafts instead of 22 ms).
pub(crate) fn in_json(pg: bool, column: &str, n: u8) -> String {
    if pg {
        format!("{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)))")
    } else {
        format!("{column} IN (SELECT value FROM json_each(${n}))")
    }
}

/// [`in_json`] for a JSON array of integers (row ids).
pub(crate) fn in_json_ids(pg: bool, column: &str, n: u8) -> String {
    if pg {
        format!("{column} = ANY(ARRAY(SELECT value::bigint FROM jsonb_array_elements_text(${n}::jsonb)))")
    } else {
        format!("{column} IN (SELECT value FROM json_each(${n}))")
    }
}

impl Tx<'_> {
    /// Upserts the records of `rows` and appends one history row for each, with two
    /// statements whatever their number (rows go in as one JSON array; the sync engine commits
    /// its writes in batches).
    pub(crate) async fn write_records(&mut self, rows: &[RecordRow<'_>]) -> anyhow::Result<()> {
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
                "fstart": r.forecast_start.to_string(), "fend": r.forecast_end.to_string(),
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
        on_tx!(self, t, pg => {
            sqlx::query(dialect(
                pg,
                "INSERT INTO pfa_records (org_id, pfa_id, data, category, source, dor, forecast_start,
                     forecast_end, monthly_rate, is_discontinued, search, version, updated_at)
                 SELECT value ->> 'org', value ->> 'pfa', value ->> 'data', value ->> 'category',
                     value ->> 'source', value ->> 'dor', value ->> 'fstart', value ->> 'fend',
                     value ->> 'rate', value ->> 'discontinued', value ->> 'search', value ->> 'version', $1
                 FROM json_each($2) WHERE true
                 ON CONFLICT (org_id, pfa_id) DO UPDATE SET data = excluded.data, category = excluded.category,
                     source = excluded.source, dor = excluded.dor, forecast_start = excluded.forecast_start,
                     forecast_end = excluded.forecast_end, monthly_rate = excluded.monthly_rate,
                     is_discontinued = excluded.is_discontinued, search = excluded.search,
                     version = excluded.version, updated_at = excluded.updated_at",
                "INSERT INTO pfa_records (org_id, pfa_id, data, category, source, dor, forecast_start,
                     forecast_end, monthly_rate, is_discontinued, search, version, updated_at)
                 SELECT value ->> 'org', value ->> 'pfa', value ->> 'data', value ->> 'category',
                     value ->> 'source', value ->> 'dor', value ->> 'fstart', value ->> 'fend',
                     (value ->> 'rate')::double precision, (value ->> 'discontinued')::boolean,
                     value ->> 'search', (value ->> 'version')::bigint, $1
                 FROM jsonb_array_elements($2::jsonb)
                 ON CONFLICT (org_id, pfa_id) DO UPDATE SET data = excluded.data, category = excluded.category,
                     source = excluded.source, dor = excluded.dor, forecast_start = excluded.forecast_start,
                     forecast_end = excluded.forecast_end, monthly_rate = excluded.monthly_rate,
                     is_discontinued = excluded.is_discontinued, search = excluded.search,
                     version = excluded.version, updated_at = excluded.updated_at",
            ))
            .bind(&now)
            .bind(Value::Array(records).to_string())
            .execute(&mut **t)
            .await?;
            sqlx::query(dialect(
                pg,
                "INSERT INTO pfa_history (org_id, pfa_id, version, data, changes, changed_by, reason, kind,
                     job_id, created_at)
                 SELECT value ->> 'org', value ->> 'pfa', value ->> 'version', value ->> 'data',
                     value ->> 'changes', value ->> 'by', value ->> 'reason', value ->> 'kind', value ->> 'job', $1
                 FROM json_each($2)",
                "INSERT INTO pfa_history (org_id, pfa_id, version, data, changes, changed_by, reason, kind,
                     job_id, created_at)
                 SELECT value ->> 'org', value ->> 'pfa', (value ->> 'version')::bigint, value ->> 'data',
                     value ->> 'changes', value ->> 'by', value ->> 'reason', value ->> 'kind', value ->> 'job', $1
                 FROM jsonb_array_elements($2::jsonb)",
            ))
            .bind(&now)
            .bind(Value::Array(history).to_string())
            .execute(&mut **t)
            .await?;
        });
        Ok(())
    }

    /// Saves drafts of `user_id`; an existing draft of the same record is replaced when
    /// `replace`, kept otherwise (a cancelled job's changes never overwrite a newer draft).
    pub(crate) async fn save_drafts(
        &mut self,
        org: &str,
        user_id: i64,
        drafts: &[NewDraft],
        replace: bool,
    ) -> anyhow::Result<()> {
        if drafts.is_empty() {
            return Ok(());
        }
        let rows: Vec<Value> = drafts
            .iter()
            .map(|d| {
                serde_json::json!({ "pfa": d.pfa_id, "changes": Value::Object(d.delta.to_json()).to_string(),
                                    "base": d.base_version, "reason": d.reason })
            })
            .collect();
        let on_conflict = if replace {
            "DO UPDATE SET changes = excluded.changes, base_version = excluded.base_version,
                 reason = excluded.reason, updated_at = excluded.updated_at"
        } else {
            "DO NOTHING"
        };
        on_tx!(self, t, pg => {
            let base = if pg { "(value ->> 'base')::bigint" } else { "value ->> 'base'" };
            sqlx::query(&format!(
                "INSERT INTO drafts (org_id, pfa_id, user_id, changes, base_version, reason, created_at, updated_at)
                 SELECT $1, value ->> 'pfa', $2, value ->> 'changes', {base}, value ->> 'reason', $3, $3
                 FROM {} WHERE true
                 ON CONFLICT (org_id, user_id, pfa_id) {on_conflict}",
                json_rows(pg, 4)
            ))
            .bind(org)
            .bind(user_id)
            .bind(now())
            .bind(Value::Array(rows).to_string())
            .execute(&mut **t)
            .await?;
        });
        Ok(())
    }
}

/// A bound value of a query whose text is built from a filter.
enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    pub async fn record_count(&self, org: &str) -> anyhow::Result<i64> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT COUNT(*) FROM pfa_records WHERE org_id = $1")
                .bind(org)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Inserts the records that do not exist yet (demo data), each with its first history
    /// row. Instances seeding the same empty database at once each insert what the other has
    /// not: a record another one inserted first is skipped, never written twice.
    pub async fn seed_records(&self, records: &[PfaRecord]) -> anyhow::Result<usize> {
        let mut by_org: std::collections::BTreeMap<&str, Vec<&PfaRecord>> = Default::default();
        for r in records {
            by_org.entry(&r.organization_id).or_default().push(r);
        }
        let mut inserted = 0;
        for (org, records) in by_org {
            for chunk in records.chunks(500) {
                let mut tx = self.begin().await?;
                let ids: Vec<&str> = chunk.iter().map(|r| r.pfa_id.as_str()).collect();
                let existing: Vec<String> = on_tx!(&mut tx, t, pg => {
                    if pg {
                        // Serializes seeders of the same organization until commit.
                        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                            .bind(format!("seed {org}"))
                            .execute(&mut **t)
                            .await?;
                    }
                    sqlx::query_scalar(&format!(
                        "SELECT pfa_id FROM pfa_records WHERE org_id = $1 AND {}",
                        in_json(pg, "pfa_id", 2)
                    ))
                    .bind(org)
                    .bind(serde_json::to_string(&ids)?)
                    .fetch_all(&mut **t)
                    .await?
                });
                let rows: Vec<RecordRow<'_>> = chunk
                    .iter()
                    .filter(|r| !existing.contains(&r.pfa_id))
                    .map(|r| RecordRow {
                        before: None,
                        after: r,
                        changed_by: "demo data",
                        reason: Some("initial import"),
                        kind: "created",
                        job_id: None,
                    })
                    .collect();
                tx.write_records(&rows).await?;
                tx.commit().await?;
                inserted += rows.len();
            }
        }
        Ok(inserted)
    }

    pub async fn record(&self, org: &str, pfa_id: &str) -> anyhow::Result<Option<PfaRecord>> {
        let data: Option<String> = on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar("SELECT data FROM pfa_records WHERE org_id = $1 AND pfa_id = $2")
                .bind(org)
                .bind(pfa_id)
                .fetch_optional(pool)
                .await?
        });
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
        let rows: Vec<(String, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!(
                "SELECT pfa_id, data FROM pfa_records WHERE org_id = $1 AND {}",
                in_json(pg, "pfa_id", 2)
            ))
            .bind(org)
            .bind(ids)
            .fetch_all(pool)
            .await?
        });
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
        let mut binds: Vec<Bind> = vec![Bind::Text(org.to_owned())];
        let mut filter = String::from(" FROM pfa_records r WHERE r.org_id = $1");
        let mut bind = |filter: &mut String, condition: &str, value: Bind| {
            binds.push(value);
            filter.push_str(&condition.replace("{}", &format!("${}", binds.len())));
        };
        if let Some(s) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let escaped = s
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            bind(
                &mut filter,
                " AND r.search LIKE {} ESCAPE '\\'",
                Bind::Text(format!("%{escaped}%")),
            );
        }
        for (column, value) in [
            ("r.category", &q.category),
            ("r.source", &q.source),
            ("r.dor", &q.dor),
        ] {
            if let Some(v) = value {
                bind(
                    &mut filter,
                    &format!(" AND {column} = {{}}"),
                    Bind::Text(v.clone()),
                );
            }
        }
        if let Some(d) = q.discontinued {
            filter.push_str(if d {
                " AND r.is_discontinued"
            } else {
                " AND NOT r.is_discontinued"
            });
        }
        if q.modified_only {
            bind(
                &mut filter,
                " AND EXISTS (SELECT 1 FROM drafts d WHERE d.org_id = r.org_id AND d.pfa_id = r.pfa_id AND d.user_id = {})",
                Bind::Int(q.drafts_of_user),
            );
        }
        let order = if q.descending {
            "DESC NULLS LAST"
        } else {
            "ASC NULLS FIRST"
        };
        let n = binds.len();
        let count_sql = format!("SELECT COUNT(*){filter}");
        let page_sql = format!(
            "SELECT r.data{filter} ORDER BY {} {order}, r.pfa_id ASC LIMIT ${} OFFSET ${}",
            q.sort.column(),
            n + 1,
            n + 2
        );
        let (total, rows): (i64, Vec<String>) = on_pool!(self.db(), pool, pg => {
            let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
            let mut page = sqlx::query_scalar::<_, String>(&page_sql);
            for b in &binds {
                match b {
                    Bind::Text(v) => {
                        count = count.bind(v.clone());
                        page = page.bind(v.clone());
                    }
                    Bind::Int(v) => {
                        count = count.bind(*v);
                        page = page.bind(*v);
                    }
                }
            }
            let total = count.fetch_one(pool).await?;
            let rows = page.bind(q.limit).bind(q.offset).fetch_all(pool).await?;
            (total, rows)
        });
        let records = rows
            .iter()
            .map(|d| serde_json::from_str(d).context("corrupt record"))
            .collect::<anyhow::Result<Vec<PfaRecord>>>()?;
        Ok((records, total))
    }

    pub async fn categories(&self, org: &str) -> anyhow::Result<Vec<String>> {
        Ok(on_pool!(self.db(), pool, pg => {
            sqlx::query_scalar(
                "SELECT DISTINCT category FROM pfa_records WHERE org_id = $1 ORDER BY category",
            )
            .bind(org)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The user's drafts for the given records (all when `pfa_ids` is None).
    pub async fn drafts(
        &self,
        org: &str,
        user_id: i64,
        pfa_ids: Option<&[String]>,
    ) -> anyhow::Result<Vec<Draft>> {
        let rows: Vec<DraftRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(DRAFTS)
                .bind(org)
                .bind(user_id)
                .fetch_all(pool)
                .await?
        });
        drafts_from(rows, pfa_ids)
    }

    /// Saves drafts all-or-nothing; saving again replaces the user's draft of a record.
    pub async fn save_drafts(
        &self,
        org: &str,
        user_id: i64,
        drafts: &[NewDraft],
    ) -> anyhow::Result<()> {
        let mut tx = self.begin().await?;
        tx.save_drafts(org, user_id, drafts, true).await?;
        tx.commit().await
    }

    /// Drops the user's drafts (all when `pfa_ids` is None); returns how many.
    pub async fn discard_drafts(
        &self,
        org: &str,
        user_id: i64,
        pfa_ids: Option<&[String]>,
    ) -> anyhow::Result<u64> {
        let ids = pfa_ids.map(serde_json::to_string).transpose()?;
        Ok(on_pool!(self.db(), pool, pg => {
            match &ids {
                None => sqlx::query("DELETE FROM drafts WHERE org_id = $1 AND user_id = $2")
                    .bind(org)
                    .bind(user_id)
                    .execute(pool)
                    .await?
                    .rows_affected(),
                Some(ids) => sqlx::query(&format!(
                    "DELETE FROM drafts WHERE org_id = $1 AND user_id = $2 AND {}",
                    in_json(pg, "pfa_id", 3)
                ))
                .bind(org)
                .bind(user_id)
                .bind(ids)
                .execute(pool)
                .await?
                .rows_affected(),
            }
        }))
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
        let rows: Vec<Row> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT version, changes, changed_by, reason, kind, job_id, created_at, data FROM pfa_history
                 WHERE org_id = $1 AND pfa_id = $2 ORDER BY version DESC",
            )
            .bind(org)
            .bind(pfa_id)
            .fetch_all(pool)
            .await?
        });
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

type DraftRow = (String, String, i64, Option<String>, String);

/// The drafts among `rows` of the given records (all when `pfa_ids` is None).
fn drafts_from(rows: Vec<DraftRow>, pfa_ids: Option<&[String]>) -> anyhow::Result<Vec<Draft>> {
    let wanted: Option<std::collections::HashSet<&str>> =
        pfa_ids.map(|ids| ids.iter().map(String::as_str).collect());
    rows.into_iter()
        .filter(|(pfa_id, ..)| {
            wanted
                .as_ref()
                .is_none_or(|ids| ids.contains(pfa_id.as_str()))
        })
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

const DRAFTS: &str = "SELECT pfa_id, changes, base_version, reason, updated_at FROM drafts
     WHERE org_id = $1 AND user_id = $2 ORDER BY pfa_id";

impl Tx<'_> {
    /// The user's drafts for the given records (all when `pfa_ids` is None), locked on
    /// PostgreSQL until this transaction ends: a commit deletes exactly what it read.
    pub(crate) async fn drafts_for_commit(
        &mut self,
        org: &str,
        user_id: i64,
        pfa_ids: Option<&[String]>,
    ) -> anyhow::Result<Vec<Draft>> {
        let rows: Vec<DraftRow> = on_tx!(self, t, pg => {
            let sql = if pg { format!("{DRAFTS} FOR UPDATE") } else { DRAFTS.to_owned() };
            sqlx::query_as(&sql)
                .bind(org)
                .bind(user_id)
                .fetch_all(&mut **t)
                .await?
        });
        drafts_from(rows, pfa_ids)
    }
}
