//! Records and drafts.

use super::http::{send, ApiError};
use crate::domain::pfa::PfaRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The caller's saved draft of a record, as the list merges it in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftView {
    pub changes: Map<String, Value>,
    pub base_version: i64,
    pub reason: Option<String>,
}

/// One row of the records list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordRow {
    #[serde(flatten)]
    pub record: PfaRecord,
    pub draft: Option<DraftView>,
}

/// The records list's answer. Its rows are not read with the rest: the records feed walks them
/// one at a time (`pages::org::records_feed::list_scan`) and reads the page without them, so
/// deserializing a page skips `items` (and the browser carries no code for `RecordRow`'s
/// flattened form).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordPage {
    #[serde(skip)]
    pub items: Vec<RecordRow>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub categories: Vec<String>,
}

/// Filters of the list, turned into the query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    pub search: String,
    pub category: String,
    pub source: String,
    pub modified_only: bool,
    pub sort: String,
}

impl RecordFilter {
    pub fn query(&self, page_size: i64) -> String {
        let mut q = vec![format!("pageSize={page_size}")];
        let enc = |s: &str| js_free_encode(s);
        if !self.search.trim().is_empty() {
            q.push(format!("q={}", enc(self.search.trim())));
        }
        if !self.category.is_empty() {
            q.push(format!("category={}", enc(&self.category)));
        }
        if !self.source.is_empty() {
            q.push(format!("source={}", enc(&self.source)));
        }
        if self.modified_only {
            q.push("modified=true".into());
        }
        if !self.sort.is_empty() {
            q.push(format!("sort={}", enc(&self.sort)));
        }
        q.join("&")
    }
}

/// Percent-encodes a query value (no JS needed, so it is testable natively).
fn js_free_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One draft to save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftInput {
    pub pfa_id: String,
    pub changes: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_version: Option<i64>,
}

#[derive(Serialize)]
struct SaveBody<'a> {
    drafts: &'a [DraftInput],
}

pub async fn save_drafts(org: &str, drafts: &[DraftInput]) -> Result<Value, ApiError> {
    send(
        "PUT",
        &format!("/api/orgs/{org}/drafts"),
        &SaveBody { drafts },
    )
    .await
}

pub async fn discard_drafts(org: &str) -> Result<Value, ApiError> {
    send(
        "POST",
        &format!("/api/orgs/{org}/drafts/discard"),
        &serde_json::json!({}),
    )
    .await
}

pub async fn commit_drafts(org: &str) -> Result<Value, ApiError> {
    send(
        "POST",
        &format!("/api/orgs/{org}/drafts/commit"),
        &serde_json::json!({}),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_an_encoded_query() {
        let f = RecordFilter {
            search: "light tower".into(),
            category: "Light Towers".into(),
            modified_only: true,
            sort: "-forecastStart".into(),
            ..Default::default()
        };
        assert_eq!(f.query(100), "pageSize=100&q=light%20tower&category=Light%20Towers&modified=true&sort=-forecastStart");
    }

    #[test]
    fn rows_carry_the_record_and_its_draft() {
        let json = serde_json::json!({
            "pfaId": "PFA-1", "organizationId": "org-rio", "category": "Cranes", "class": "c", "forecastCategory": "f",
            "areaSilo": "a", "manufacturer": "m", "model": "m", "contract": "c", "equipment": "e", "source": "Rental",
            "dor": "BEO", "monthlyRate": 10.0, "purchasePrice": null, "originalStart": "2026-01-01", "originalEnd": "2026-02-01",
            "forecastStart": "2026-01-01", "forecastEnd": "2026-02-01", "actualStart": null, "actualEnd": null,
            "isActualized": false, "isDiscontinued": false, "isFundsTransferable": false, "hasPlan": true, "hasActuals": false,
            "notes": "", "version": 3, "lastSyncedAt": null,
            "draft": {"changes": {"notes": "x"}, "baseVersion": 3, "reason": null, "updatedAt": "t", "pfaId": "PFA-1"}
        });
        let row: RecordRow = serde_json::from_value(json).unwrap();
        assert_eq!(row.record.version, 3);
        assert_eq!(row.draft.unwrap().changes["notes"], "x");
    }
}
