//! The PFA record (one piece of equipment on a project), its editable fields, and the
//! validation of a change ("delta") against a record. Pure.

use crate::protocol::text::named;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Field name -> what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    Rental,
    Purchase,
}

named!(Source {
    Rental => "Rental",
    Purchase => "Purchase",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum Dor {
    BEO,
    PROJECT,
}

named!(Dor {
    BEO => "BEO",
    PROJECT => "PROJECT",
});

/// One PFA record as pfa-sync stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PfaRecord {
    pub pfa_id: String,
    pub organization_id: String,
    pub category: String,
    pub class: String,
    pub forecast_category: String,
    pub area_silo: String,
    pub manufacturer: String,
    pub model: String,
    pub contract: String,
    pub equipment: String,
    pub source: Source,
    pub dor: Dor,
    pub monthly_rate: Option<f64>,
    pub purchase_price: Option<f64>,
    #[serde(with = "super::date")]
    pub original_start: NaiveDate,
    #[serde(with = "super::date")]
    pub original_end: NaiveDate,
    #[serde(with = "super::date")]
    pub forecast_start: NaiveDate,
    #[serde(with = "super::date")]
    pub forecast_end: NaiveDate,
    #[serde(with = "super::date::option")]
    pub actual_start: Option<NaiveDate>,
    #[serde(with = "super::date::option")]
    pub actual_end: Option<NaiveDate>,
    pub is_actualized: bool,
    pub is_discontinued: bool,
    pub is_funds_transferable: bool,
    pub has_plan: bool,
    pub has_actuals: bool,
    pub notes: String,
    pub version: i64,
    #[serde(with = "crate::protocol::timestamp::option")]
    pub last_synced_at: Option<DateTime<Utc>>,
}

/// The fields planners may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EditableField {
    ForecastStart,
    ForecastEnd,
    ForecastCategory,
    Category,
    Source,
    Dor,
    MonthlyRate,
    PurchasePrice,
    Equipment,
    IsDiscontinued,
    IsFundsTransferable,
    Notes,
}

impl EditableField {
    pub const ALL: [EditableField; 12] = [
        Self::ForecastStart,
        Self::ForecastEnd,
        Self::ForecastCategory,
        Self::Category,
        Self::Source,
        Self::Dor,
        Self::MonthlyRate,
        Self::PurchasePrice,
        Self::Equipment,
        Self::IsDiscontinued,
        Self::IsFundsTransferable,
        Self::Notes,
    ];

    /// The camelCase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForecastStart => "forecastStart",
            Self::ForecastEnd => "forecastEnd",
            Self::ForecastCategory => "forecastCategory",
            Self::Category => "category",
            Self::Source => "source",
            Self::Dor => "dor",
            Self::MonthlyRate => "monthlyRate",
            Self::PurchasePrice => "purchasePrice",
            Self::Equipment => "equipment",
            Self::IsDiscontinued => "isDiscontinued",
            Self::IsFundsTransferable => "isFundsTransferable",
            Self::Notes => "notes",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }
}

/// A validated change of editable fields: field -> new JSON value (canonical form).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Delta(pub BTreeMap<EditableField, Value>);

const MAX_TEXT: usize = 200;
const MAX_NOTES: usize = 4000;
const MAX_MONEY: f64 = 1.0e12;

fn parse_value(field: EditableField, value: &Value) -> Result<Value, String> {
    use EditableField as F;
    match field {
        F::ForecastStart | F::ForecastEnd => match value.as_str().and_then(super::date::parse) {
            Some(d) => Ok(Value::String(super::date::format(d))),
            _ => Err("must be a date YYYY-MM-DD".into()),
        },
        F::ForecastCategory | F::Category | F::Equipment => match value.as_str().map(str::trim) {
            Some(s) if !s.is_empty() && s.chars().count() <= MAX_TEXT => {
                Ok(Value::String(s.to_owned()))
            }
            Some(_) => Err(format!("must be 1 to {MAX_TEXT} characters")),
            None => Err("must be a string".into()),
        },
        F::Notes => match value.as_str() {
            Some(s) if s.chars().count() <= MAX_NOTES => Ok(Value::String(s.to_owned())),
            Some(_) => Err(format!("must be at most {MAX_NOTES} characters")),
            None => Err("must be a string".into()),
        },
        F::Source => match value.as_str() {
            Some("Rental" | "Purchase") => Ok(value.clone()),
            _ => Err("must be Rental or Purchase".into()),
        },
        F::Dor => match value.as_str() {
            Some("BEO" | "PROJECT") => Ok(value.clone()),
            _ => Err("must be BEO or PROJECT".into()),
        },
        F::MonthlyRate | F::PurchasePrice => match value {
            Value::Null => Ok(Value::Null),
            Value::Number(n) => match n.as_f64() {
                Some(x) if x < 0.0 => Err("must not be negative".into()),
                Some(x) if x.is_finite() && x <= MAX_MONEY => {
                    Ok(Value::from((x * 100.0).round() / 100.0))
                }
                _ => Err("must be a number".into()),
            },
            _ => Err("must be a number or null".into()),
        },
        F::IsDiscontinued | F::IsFundsTransferable => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err("must be true or false".into()),
        },
    }
}

impl Delta {
    /// Parses a JSON object of changes: every unknown field, wrong type or bad value is
    /// reported at once.
    pub fn parse(changes: &Map<String, Value>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut delta = BTreeMap::new();
        if changes.is_empty() {
            errors.insert("changes".into(), "at least one field must change".into());
        }
        for (name, value) in changes {
            match EditableField::parse(name) {
                None => {
                    errors.insert(name.clone(), "unknown or read-only field".into());
                }
                Some(field) => match parse_value(field, value) {
                    Ok(v) => {
                        delta.insert(field, v);
                    }
                    Err(e) => {
                        errors.insert(name.clone(), e);
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(Self(delta))
        } else {
            Err(errors)
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = EditableField> + '_ {
        self.0.keys().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The delta as a JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(f, v)| (f.as_str().to_owned(), v.clone()))
            .collect()
    }

    /// The record with the delta applied, checked against the domain rules.
    pub fn apply(&self, record: &PfaRecord) -> Result<PfaRecord, FieldErrors> {
        let mut next = record.clone();
        let mut errors = FieldErrors::new();
        for (field, value) in &self.0 {
            // `Delta::parse` checked the values, so this does not fail; if it did, the field
            // would say why. (No `expect`: its message would put `String`'s `Debug` formatting,
            // with core's Unicode escape tables, in the wasm.)
            if let Err(e) = next.set(*field, value) {
                errors.insert(field.as_str().to_owned(), e);
            }
        }
        if next.forecast_end < next.forecast_start {
            errors.insert(
                "forecastEnd".into(),
                "must not be before forecastStart".into(),
            );
        }
        match next.source {
            Source::Rental if next.monthly_rate.is_none() => {
                errors.insert("monthlyRate".into(), "a Rental needs a monthly rate".into());
            }
            Source::Purchase if next.purchase_price.is_none() => {
                errors.insert(
                    "purchasePrice".into(),
                    "a Purchase needs a purchase price".into(),
                );
            }
            _ => {}
        }
        if record.is_actualized && next.source != record.source {
            errors.insert(
                "source".into(),
                "an actualized record cannot change its source".into(),
            );
        }
        if record.is_discontinued && !next.is_discontinued {
            errors.insert(
                "isDiscontinued".into(),
                "a discontinued record cannot be reactivated".into(),
            );
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors)
        }
    }
}

impl PfaRecord {
    /// The current value of an editable field, in the delta's JSON form.
    pub fn get(&self, field: EditableField) -> Value {
        use EditableField as F;
        let date = |d: NaiveDate| Value::String(super::date::format(d));
        match field {
            F::ForecastStart => date(self.forecast_start),
            F::ForecastEnd => date(self.forecast_end),
            F::ForecastCategory => Value::String(self.forecast_category.clone()),
            F::Category => Value::String(self.category.clone()),
            F::Source => Value::from(self.source.as_str()),
            F::Dor => Value::from(self.dor.as_str()),
            F::MonthlyRate => self.monthly_rate.map(Value::from).unwrap_or(Value::Null),
            F::PurchasePrice => self.purchase_price.map(Value::from).unwrap_or(Value::Null),
            F::Equipment => Value::String(self.equipment.clone()),
            F::IsDiscontinued => Value::Bool(self.is_discontinued),
            F::IsFundsTransferable => Value::Bool(self.is_funds_transferable),
            F::Notes => Value::String(self.notes.clone()),
        }
    }

    /// Sets an editable field from a (parsed) JSON value.
    pub fn set(&mut self, field: EditableField, value: &Value) -> Result<(), String> {
        use EditableField as F;
        let value = parse_value(field, value)?;
        let text = || value.as_str().unwrap_or_default().to_owned();
        let date = || {
            super::date::parse(value.as_str().unwrap_or_default())
                .ok_or_else(|| "must be a date YYYY-MM-DD".to_owned())
        };
        match field {
            F::ForecastStart => self.forecast_start = date()?,
            F::ForecastEnd => self.forecast_end = date()?,
            F::ForecastCategory => self.forecast_category = text(),
            F::Category => self.category = text(),
            F::Source => {
                self.source = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?
            }
            F::Dor => {
                self.dor = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?
            }
            F::MonthlyRate => self.monthly_rate = value.as_f64(),
            F::PurchasePrice => self.purchase_price = value.as_f64(),
            F::Equipment => self.equipment = text(),
            F::IsDiscontinued => self.is_discontinued = value.as_bool().unwrap_or_default(),
            F::IsFundsTransferable => {
                self.is_funds_transferable = value.as_bool().unwrap_or_default()
            }
            F::Notes => self.notes = text(),
        }
        Ok(())
    }

    /// Forecast cost: rental days / 30.44 x monthly rate, or the purchase price.
    pub fn forecast_cost(&self) -> f64 {
        match self.source {
            Source::Rental => {
                let days = (self.forecast_end - self.forecast_start).num_days().max(0) as f64;
                days / 30.44 * self.monthly_rate.unwrap_or(0.0)
            }
            Source::Purchase => self.purchase_price.unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn source_and_dor_read_back_what_they_write_and_nothing_else() {
        for s in [Source::Rental, Source::Purchase] {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, s.as_str());
            assert_eq!(serde_json::from_value::<Source>(json).unwrap(), s);
        }
        for d in [Dor::BEO, Dor::PROJECT] {
            let json = serde_json::to_value(d).unwrap();
            assert_eq!(json, d.as_str());
            assert_eq!(serde_json::from_value::<Dor>(json).unwrap(), d);
        }
        let error = serde_json::from_value::<Source>(json!("Lease")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown variant `Lease`, expected `Rental` or `Purchase`"
        );
        assert!(serde_json::from_value::<Dor>(json!("beo")).is_err());
        assert!(serde_json::from_value::<Dor>(json!(null)).is_err());
    }

    #[test]
    fn a_source_is_shown_by_its_wire_name() {
        for source in [Source::Rental, Source::Purchase] {
            assert_eq!(serde_json::to_value(source).unwrap(), source.as_str());
        }
    }

    pub fn sample() -> PfaRecord {
        let d = |s: &str| crate::domain::date::parse(s).unwrap();
        PfaRecord {
            pfa_id: "PFA-001".into(),
            organization_id: "org-rio".into(),
            category: "Cranes".into(),
            class: "Crawler Crane".into(),
            forecast_category: "Heavy Lift".into(),
            area_silo: "Area 1".into(),
            manufacturer: "Liebherr".into(),
            model: "LR 1300".into(),
            contract: "C-100".into(),
            equipment: "CR-01".into(),
            source: Source::Rental,
            dor: Dor::PROJECT,
            monthly_rate: Some(42_000.0),
            purchase_price: None,
            original_start: d("2026-01-01"),
            original_end: d("2026-06-30"),
            forecast_start: d("2026-01-15"),
            forecast_end: d("2026-07-15"),
            actual_start: None,
            actual_end: None,
            is_actualized: false,
            is_discontinued: false,
            is_funds_transferable: false,
            has_plan: true,
            has_actuals: false,
            notes: String::new(),
            version: 1,
            last_synced_at: None,
        }
    }

    fn delta(v: Value) -> Result<Delta, FieldErrors> {
        Delta::parse(v.as_object().unwrap())
    }

    #[test]
    fn a_valid_delta_applies() {
        let d = delta(
            json!({"forecastStart": "2026-02-01", "monthlyRate": 40000.456, "notes": "moved"}),
        )
        .unwrap();
        let next = d.apply(&sample()).unwrap();
        assert_eq!(next.forecast_start.to_string(), "2026-02-01");
        assert_eq!(next.monthly_rate, Some(40000.46));
        assert_eq!(next.get(EditableField::MonthlyRate), json!(40000.46));
    }

    #[test]
    fn unknown_fields_wrong_types_and_negative_rates_are_reported_together() {
        let errors = delta(
            json!({"pfaId": "X", "forecastStart": 5, "monthlyRate": -1, "source": "Lease",
                                  "isDiscontinued": "yes"}),
        )
        .unwrap_err();
        for f in [
            "pfaId",
            "forecastStart",
            "monthlyRate",
            "source",
            "isDiscontinued",
        ] {
            assert!(errors.contains_key(f), "{f}: {errors:?}");
        }
        assert!(delta(json!({})).unwrap_err().contains_key("changes"));
    }

    #[test]
    fn domain_rules_are_checked_against_the_record() {
        let end_before_start = delta(json!({"forecastEnd": "2025-01-01"})).unwrap();
        assert!(end_before_start
            .apply(&sample())
            .unwrap_err()
            .contains_key("forecastEnd"));
        let purchase_without_price = delta(json!({"source": "Purchase"})).unwrap();
        assert!(purchase_without_price
            .apply(&sample())
            .unwrap_err()
            .contains_key("purchasePrice"));
        let mut actualized = sample();
        actualized.is_actualized = true;
        let to_purchase = delta(json!({"source": "Purchase", "purchasePrice": 10})).unwrap();
        assert!(to_purchase
            .apply(&actualized)
            .unwrap_err()
            .contains_key("source"));
        let mut discontinued = sample();
        discontinued.is_discontinued = true;
        let reactivate = delta(json!({"isDiscontinued": false})).unwrap();
        assert!(reactivate
            .apply(&discontinued)
            .unwrap_err()
            .contains_key("isDiscontinued"));
    }

    #[test]
    fn rental_cost_follows_the_days_over_30_44_rule() {
        let r = sample();
        let days = (r.forecast_end - r.forecast_start).num_days() as f64;
        assert!((r.forecast_cost() - days / 30.44 * 42_000.0).abs() < 1e-6);
    }

    mod properties {
        use super::*;
        use crate::protocol::arbitrary;
        use proptest::prelude::*;

        fn field_names() -> Vec<&'static str> {
            EditableField::ALL.iter().map(|f| f.as_str()).collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any object of changes is a delta or field errors; a delta applies to a record
            /// or reports errors, and what it applies keeps the record's identity.
            #[test]
            fn any_changes_are_a_delta_or_field_errors(
                changes in arbitrary::object_with(Box::leak(field_names().into_boxed_slice())),
            ) {
                let record = crate::domain::demo_data::demo_records("org-rio", 1).remove(0);
                match Delta::parse(&changes) {
                    Ok(delta) => match delta.apply(&record) {
                        Ok(changed) => {
                            prop_assert_eq!(&changed.pfa_id, &record.pfa_id);
                            prop_assert_eq!(changed.version, record.version);
                        }
                        Err(errors) => prop_assert!(!errors.is_empty()),
                    },
                    Err(errors) => prop_assert!(!errors.is_empty()),
                }
            }
        }
    }
}
