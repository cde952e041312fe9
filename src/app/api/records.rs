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
    /// The list's query string (`application/x-www-form-urlencoded`, as the server reads it):
    /// the page size, then each filter that is set.
    pub fn query(&self, page_size: i64) -> String {
        #[derive(Serialize)]
        struct Query<'a> {
            #[serde(rename = "pageSize")]
            page_size: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            q: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            category: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            source: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            modified: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            sort: Option<&'a str>,
        }
        fn set(s: &str) -> Option<&str> {
            Some(s).filter(|s| !s.is_empty())
        }
        serde_urlencoded::to_string(Query {
            page_size,
            q: set(self.search.trim()),
            category: set(&self.category),
            source: set(&self.source),
            modified: self.modified_only.then_some(true),
            sort: set(&self.sort),
        })
        .expect("a flat struct of strings, numbers and booleans encodes")
    }
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
        assert_eq!(
            f.query(100),
            "pageSize=100&q=light+tower&category=Light+Towers&modified=true&sort=-forecastStart"
        );
        let odd = RecordFilter {
            search: " a&b=c/ü ".into(),
            ..Default::default()
        };
        assert_eq!(odd.query(5), "pageSize=5&q=a%26b%3Dc%2F%C3%BC");
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
