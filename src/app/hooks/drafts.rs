//! `use_draft_management`: the card's optimistic save. Edits show at once; Save Draft clears
//! the pending list and says "Saved!" in the same frame while the request runs in the
//! background (`[Performance] Saved in X ms`); on failure the edits come back with "Failed to
//! save - changes reverted". Pending edits survive a reload (local storage) until the server
//! has them.

use crate::{
    app::{
        api::records::{self, DraftInput},
        components::toasts::Toasts,
    },
    domain::pfa::{Delta, EditableField, FieldErrors, PfaRecord},
};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Unsaved edits: record -> field -> new value, with the version each edit was based on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingEdits {
    records: BTreeMap<String, PendingRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PendingRecord {
    base_version: i64,
    changes: Map<String, Value>,
}

impl PendingEdits {
    /// Records an edit; an edit back to the record's own value removes it.
    pub fn set(&mut self, record: &PfaRecord, field: EditableField, value: Value) {
        let entry = self
            .records
            .entry(record.pfa_id.clone())
            .or_insert_with(|| PendingRecord {
                base_version: record.version,
                changes: Map::new(),
            });
        if record.get(field) == value {
            entry.changes.remove(field.as_str());
        } else {
            entry.changes.insert(field.as_str().to_owned(), value);
        }
        if entry.changes.is_empty() {
            self.records.remove(&record.pfa_id);
        }
    }

    pub fn value(&self, pfa_id: &str, field: EditableField) -> Option<&Value> {
        self.records.get(pfa_id)?.changes.get(field.as_str())
    }

    pub fn has(&self, pfa_id: &str) -> bool {
        self.records.contains_key(pfa_id)
    }

    /// Records with unsaved edits.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The request body of a save.
    pub fn to_inputs(&self) -> Vec<DraftInput> {
        self.records
            .iter()
            .map(|(pfa_id, p)| DraftInput {
                pfa_id: pfa_id.clone(),
                changes: p.changes.clone(),
                base_version: Some(p.base_version),
            })
            .collect()
    }

    /// One record's pending edits, field -> new value.
    pub fn changes_of(&self, pfa_id: &str) -> Option<&Map<String, Value>> {
        self.records.get(pfa_id).map(|p| &p.changes)
    }

    /// Field errors of a record with its pending edits (and saved draft) applied.
    pub fn errors_for(
        &self,
        record: &PfaRecord,
        saved: Option<&Map<String, Value>>,
    ) -> FieldErrors {
        field_errors(record, saved, self.changes_of(&record.pfa_id))
    }

    /// Puts back edits that a failed save had taken out, keeping newer edits of the same field.
    pub fn restore(&mut self, backup: PendingEdits) {
        for (pfa_id, record) in backup.records {
            let entry = self.records.entry(pfa_id).or_insert_with(|| PendingRecord {
                base_version: record.base_version,
                changes: Map::new(),
            });
            for (field, value) in record.changes {
                entry.changes.entry(field).or_insert(value);
            }
        }
    }
}

/// Field errors of a record with its saved draft and then its pending edits applied.
pub fn field_errors(
    record: &PfaRecord,
    saved: Option<&Map<String, Value>>,
    pending: Option<&Map<String, Value>>,
) -> FieldErrors {
    let mut changes = saved.cloned().unwrap_or_default();
    if let Some(pending) = pending {
        changes.extend(pending.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if changes.is_empty() {
        return FieldErrors::new();
    }
    match Delta::parse(&changes) {
        Ok(delta) => delta.apply(record).err().unwrap_or_default(),
        Err(errors) => errors,
    }
}

/// The draft workflow of one organization's page.
#[derive(Clone, Copy)]
pub struct DraftManagement {
    pub pending: RwSignal<PendingEdits>,
    org: Signal<String>,
    toasts: Toasts,
    /// Called after the server changed drafts (save, discard, commit), to refetch.
    changed: Callback<()>,
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn storage_key(org: &str) -> String {
    format!("pfa-sync:pending:{org}")
}

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

pub fn use_draft_management(
    org: Signal<String>,
    toasts: Toasts,
    changed: Callback<()>,
) -> DraftManagement {
    let pending = RwSignal::new(PendingEdits::default());
    #[cfg(feature = "hydrate")]
    {
        // Restore what a reload interrupted, then keep local storage in step.
        Effect::new(move |_| {
            let org = org.get();
            let saved = storage()
                .and_then(|s| s.get_item(&storage_key(&org)).ok().flatten())
                // `from_slice`: the one serde_json reader in the wasm (see hooks::sync_status).
                .and_then(|raw| serde_json::from_slice::<PendingEdits>(raw.as_bytes()).ok())
                .unwrap_or_default();
            pending.set(saved);
        });
        Effect::new(move |_| {
            let edits = pending.get();
            let key = storage_key(&org.get_untracked());
            if let Some(s) = storage() {
                let _ = if edits.is_empty() {
                    s.remove_item(&key)
                } else {
                    s.set_item(&key, &serde_json::to_string(&edits).unwrap_or_default())
                };
            }
        });
    }
    DraftManagement {
        pending,
        org,
        toasts,
        changed,
    }
}

fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        window()
            .performance()
            .map(|p| p.now())
            .unwrap_or_else(js_sys::Date::now)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

/// Milliseconds with two decimals (`12.34`), as the card's `[Performance]` line shows them,
/// written with integer formatting so that no float formatting is in the wasm.
fn two_decimals(ms: f64) -> String {
    let hundredths = (ms.max(0.0) * 100.0).round() as u64;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

impl DraftManagement {
    pub fn edit(&self, record: &PfaRecord, field: EditableField, value: Value) {
        self.pending.update(|p| p.set(record, field, value));
    }

    /// Optimistic save: clears the pending list and says "Saved!" at once; the request runs in
    /// the background and a failure brings the edits back.
    pub fn save(&self) {
        let backup = self.pending.get_untracked();
        if backup.is_empty() {
            return;
        }
        let started = now_ms();
        self.pending.set(PendingEdits::default());
        self.toasts.success("Saved!");
        let (pending, toasts, changed, org) = (
            self.pending,
            self.toasts,
            self.changed,
            self.org.get_untracked(),
        );
        leptos::task::spawn_local(async move {
            match records::save_drafts(&org, &backup.to_inputs()).await {
                Ok(_) => {
                    leptos::logging::log!(
                        "[Performance] Saved in {}ms",
                        two_decimals(now_ms() - started)
                    );
                    changed.run(());
                }
                Err(error) => {
                    pending.update(|p| p.restore(backup));
                    toasts.error(format!("Failed to save - changes reverted ({error})"));
                }
            }
        });
    }

    pub fn discard(&self) {
        self.pending.set(PendingEdits::default());
        let (toasts, changed, org) = (self.toasts, self.changed, self.org.get_untracked());
        leptos::task::spawn_local(async move {
            match records::discard_drafts(&org).await {
                Ok(answer) => {
                    let discarded = answer["discarded"].as_u64().unwrap_or(0);
                    toasts.info(format!("Discarded {discarded} draft(s)"));
                    changed.run(());
                }
                Err(error) => toasts.error(format!("Discard failed: {error}")),
            }
        });
    }

    pub fn commit(&self) {
        let (toasts, changed, org) = (self.toasts, self.changed, self.org.get_untracked());
        leptos::task::spawn_local(async move {
            match records::commit_drafts(&org).await {
                Ok(answer) => {
                    let total = answer["job"]["total"].as_u64().unwrap_or(0);
                    toasts.info(format!("Sync started: {total} record(s)"));
                    changed.run(());
                }
                Err(error) => toasts.error(format!("Commit failed: {error}")),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> PfaRecord {
        crate::domain::demo_data::demo_records("org-rio", 1).remove(0)
    }

    #[test]
    fn save_times_show_two_decimals() {
        assert_eq!(two_decimals(0.0), "0.00");
        assert_eq!(two_decimals(41.6666), "41.67");
        assert_eq!(two_decimals(12.005), "12.01");
        assert_eq!(two_decimals(100.1), "100.10");
        assert_eq!(two_decimals(-1.0), "0.00");
    }

    #[test]
    fn an_edit_back_to_the_original_value_is_no_edit() {
        let r = record();
        let mut p = PendingEdits::default();
        p.set(&r, EditableField::Notes, json!("changed"));
        assert_eq!(p.len(), 1);
        p.set(&r, EditableField::Notes, r.get(EditableField::Notes));
        assert!(p.is_empty());
    }

    #[test]
    fn inputs_carry_the_base_version() {
        let r = record();
        let mut p = PendingEdits::default();
        p.set(&r, EditableField::Equipment, json!("X-1"));
        let inputs = p.to_inputs();
        assert_eq!(
            (inputs[0].pfa_id.as_str(), inputs[0].base_version),
            (r.pfa_id.as_str(), Some(r.version))
        );
    }

    #[test]
    fn errors_are_found_before_saving() {
        let r = record();
        let mut p = PendingEdits::default();
        p.set(&r, EditableField::ForecastEnd, json!("2000-01-01"));
        assert!(p.errors_for(&r, None).contains_key("forecastEnd"));
    }

    #[test]
    fn a_failed_save_restores_edits_without_overwriting_newer_ones() {
        let r = record();
        let mut backup = PendingEdits::default();
        backup.set(&r, EditableField::Notes, json!("old"));
        backup.set(&r, EditableField::Equipment, json!("E-1"));
        let mut now = PendingEdits::default();
        now.set(&r, EditableField::Notes, json!("newer"));
        now.restore(backup);
        assert_eq!(
            now.value(&r.pfa_id, EditableField::Notes),
            Some(&json!("newer"))
        );
        assert_eq!(
            now.value(&r.pfa_id, EditableField::Equipment),
            Some(&json!("E-1"))
        );
    }

    #[test]
    fn pending_edits_survive_serialization() {
        let r = record();
        let mut p = PendingEdits::default();
        p.set(&r, EditableField::MonthlyRate, json!(123.0));
        let back: PendingEdits = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(storage_key("org-rio"), "pfa-sync:pending:org-rio");
    }
}
