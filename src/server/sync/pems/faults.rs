//! Fault injection for the PEMS simulator: the settings tests and demos put through
//! `/api/pems/_faults`, the plain decision of which status (if any) a request answers, and the
//! fault API itself (settings, remote edits that provoke conflicts, write counters).
//!
//! Time is passed in (`now`) rather than read, so the decisions are tested without sleeping.

use super::{
    simulator::Simulator,
    wire::{ErrorBody, RemoteEdit, Stats, INVALID_REQUEST},
};
use axum::{
    extract::{rejection::JsonRejection, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// The statuses faults may answer with.
pub const FAULT_STATUSES: [u16; 6] = [400, 401, 404, 429, 500, 503];
/// Longest injectable latency (one minute).
pub const MAX_LATENCY_MS: u64 = 60_000;
/// Longest injectable outage (one hour).
pub const MAX_OUTAGE_MS: u64 = 3_600_000;
/// Most statuses `failNext` may queue.
pub const MAX_FAIL_NEXT: usize = 1_000;

/// Fault settings; every field is optional on the wire and defaults to "no fault".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before every read and write is answered.
    pub latency_ms: u64,
    /// Share of write requests (0..=1) answered with `error_status`.
    pub error_rate: f64,
    /// The status `error_rate` answers with (default 503).
    pub error_status: u16,
    /// Statuses answered, in order, by the next write requests (`[503, 503]` = twice).
    pub fail_next: Vec<u16>,
    /// Every request answers 503 for this long, counted from when the settings are set.
    pub outage_secs: u64,
    /// Added to `outage_secs`, for outages shorter than a second (tests).
    pub outage_ms: u64,
    /// Seed of the `error_rate` random generator, so runs repeat exactly.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            fail_next: Vec::new(),
            outage_secs: 0,
            outage_ms: 0,
            seed: 0,
        }
    }
}

/// Fault settings that cannot be applied; the message says which value is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFaults(pub String);

impl Faults {
    /// Checks every value is in range; the simulator answers 422 with the message otherwise.
    pub fn validate(&self) -> Result<(), InvalidFaults> {
        let bad = |m: String| Err(InvalidFaults(m));
        if self.latency_ms > MAX_LATENCY_MS {
            return bad(format!("latencyMs must be at most {MAX_LATENCY_MS}"));
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return bad("errorRate must be between 0 and 1".into());
        }
        if !FAULT_STATUSES.contains(&self.error_status) {
            return bad(format!("errorStatus must be one of {FAULT_STATUSES:?}"));
        }
        if self.fail_next.len() > MAX_FAIL_NEXT {
            return bad(format!("failNext holds at most {MAX_FAIL_NEXT} statuses"));
        }
        if let Some(s) = self.fail_next.iter().find(|s| !FAULT_STATUSES.contains(s)) {
            return bad(format!(
                "failNext status {s} must be one of {FAULT_STATUSES:?}"
            ));
        }
        if self.outage().as_millis() > u128::from(MAX_OUTAGE_MS) {
            return bad(format!("the outage must last at most {MAX_OUTAGE_MS} ms"));
        }
        Ok(())
    }

    /// How long the outage lasts from when the settings are applied.
    pub fn outage(&self) -> Duration {
        Duration::from_secs(self.outage_secs).saturating_add(Duration::from_millis(self.outage_ms))
    }
}

/// Faults in force: the settings, the queue left of `fail_next`, the outage deadline and the
/// seeded random generator.
#[derive(Debug, Clone)]
pub struct FaultState {
    faults: Faults,
    outage_until: Option<Instant>,
    rng: StdRng,
}

impl Default for FaultState {
    fn default() -> Self {
        Self::new(Faults::default(), Instant::now()).expect("the default faults are valid")
    }
}

impl FaultState {
    /// Applies validated `faults` at `now` (the outage starts now).
    pub fn new(faults: Faults, now: Instant) -> Result<Self, InvalidFaults> {
        faults.validate()?;
        let outage = faults.outage();
        Ok(Self {
            outage_until: (!outage.is_zero()).then(|| now + outage),
            rng: StdRng::seed_from_u64(faults.seed),
            faults,
        })
    }

    /// The settings, with `fail_next` holding only the statuses not answered yet.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The delay every read and write waits before being handled.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.faults.latency_ms)
    }

    /// Time left of the outage at `now`; `None` when PEMS is up.
    pub fn outage_remaining(&self, now: Instant) -> Option<Duration> {
        self.outage_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// The status a read (or health check) answers at `now` instead of its result.
    pub fn decide_read(&self, now: Instant) -> Option<u16> {
        self.outage_remaining(now).map(|_| 503)
    }

    /// The status a write request answers at `now` instead of being handled: the outage first,
    /// then the next queued `fail_next` status, then `error_rate`.
    pub fn decide_write(&mut self, now: Instant) -> Option<u16> {
        if self.outage_remaining(now).is_some() {
            return Some(503);
        }
        if !self.faults.fail_next.is_empty() {
            return Some(self.faults.fail_next.remove(0));
        }
        if self.faults.error_rate > 0.0 && self.rng.gen::<f64>() < self.faults.error_rate {
            return Some(self.faults.error_status);
        }
        None
    }
}

/// `GET /api/pems/_faults`: the settings plus how long the outage still lasts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FaultsView {
    #[serde(flatten)]
    faults: Faults,
    outage_remaining_ms: u64,
}

/// The fault API the simulator serves: `/api/pems/_faults` (GET, PUT, DELETE),
/// `/api/pems/_faults/remote-edit` (POST) and `/api/pems/_stats` (GET).
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route(
            "/api/pems/_faults",
            get(get_faults).put(put_faults).delete(reset_faults),
        )
        .route("/api/pems/_faults/remote-edit", post(remote_edit))
        .route("/api/pems/_stats", get(stats))
}

fn faults_view(sim: &Simulator) -> Response {
    let left = sim.outage_remaining().unwrap_or_default();
    let view = FaultsView {
        faults: sim.faults(),
        outage_remaining_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
    };
    Json(view).into_response()
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        success: false,
        error: code.into(),
        message,
    };
    (status, Json(body)).into_response()
}

async fn get_faults(State(sim): State<Simulator>) -> Response {
    faults_view(&sim)
}

async fn put_faults(
    State(sim): State<Simulator>,
    body: Result<Json<Faults>, JsonRejection>,
) -> Response {
    let result = match body {
        Ok(Json(faults)) => sim.set_faults(faults),
        Err(rejection) => {
            return refuse(rejection.status(), "INVALID_FAULTS", rejection.body_text())
        }
    };
    match result {
        Ok(()) => faults_view(&sim),
        Err(InvalidFaults(message)) => {
            refuse(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FAULTS", message)
        }
    }
}

async fn reset_faults(State(sim): State<Simulator>) -> Response {
    sim.reset_faults();
    faults_view(&sim)
}

async fn remote_edit(
    State(sim): State<Simulator>,
    body: Result<Json<RemoteEdit>, JsonRejection>,
) -> Response {
    let edit = match body {
        Ok(Json(edit)) => edit,
        Err(rejection) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                rejection.body_text(),
            )
        }
    };
    if edit.organization_code.is_empty() || edit.pfa_id.is_empty() || edit.changes.is_empty() {
        let message = "organizationCode, pfaId and changes are required".to_owned();
        return refuse(StatusCode::BAD_REQUEST, INVALID_REQUEST, message);
    }
    let record = sim.remote_edit_by(
        &edit.organization_code,
        &edit.pfa_id,
        edit.changes,
        edit.base_version.unwrap_or(1),
        edit.modified_by.as_deref().unwrap_or("pems-user"),
    );
    Json(record).into_response()
}

async fn stats(State(sim): State<Simulator>) -> Json<Stats> {
    Json(sim.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(faults: Faults) -> (FaultState, Instant) {
        let now = Instant::now();
        (FaultState::new(faults, now).unwrap(), now)
    }

    #[test]
    fn no_faults_answer_nothing() {
        let (mut s, now) = state(Faults::default());
        assert_eq!(s.decide_write(now), None);
        assert_eq!(s.decide_read(now), None);
        assert_eq!(s.latency(), Duration::ZERO);
    }

    #[test]
    fn fail_next_answers_its_statuses_in_order_then_nothing() {
        let (mut s, now) = state(Faults {
            fail_next: vec![503, 429],
            ..Faults::default()
        });
        assert_eq!(s.decide_write(now), Some(503));
        assert_eq!(s.faults().fail_next, vec![429]);
        assert_eq!(s.decide_write(now), Some(429));
        assert_eq!(s.decide_write(now), None);
        assert_eq!(s.decide_read(now), None, "reads do not consume fail_next");
    }

    #[test]
    fn an_outage_answers_503_to_everything_until_it_ends() {
        let (mut s, now) = state(Faults {
            outage_ms: 300,
            fail_next: vec![400],
            ..Faults::default()
        });
        assert_eq!(s.decide_read(now), Some(503));
        assert_eq!(s.decide_write(now + Duration::from_millis(299)), Some(503));
        assert_eq!(
            s.outage_remaining(now + Duration::from_millis(100)),
            Some(Duration::from_millis(200))
        );
        let later = now + Duration::from_millis(300);
        assert_eq!(s.decide_read(later), None);
        assert_eq!(
            s.decide_write(later),
            Some(400),
            "fail_next survives the outage"
        );
    }

    #[test]
    fn error_rate_one_always_fails_and_zero_never_does() {
        let (mut always, now) = state(Faults {
            error_rate: 1.0,
            error_status: 400,
            ..Faults::default()
        });
        assert!((0..100).all(|_| always.decide_write(now) == Some(400)));
        let (mut never, now) = state(Faults::default());
        assert!((0..100).all(|_| never.decide_write(now).is_none()));
    }

    #[test]
    fn the_same_seed_fails_the_same_requests() {
        let run = |seed| {
            let (mut s, now) = state(Faults {
                error_rate: 0.5,
                seed,
                ..Faults::default()
            });
            (0..64).map(|_| s.decide_write(now)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let failures = run(7).iter().filter(|d| d.is_some()).count();
        assert!((10..=54).contains(&failures), "{failures}");
    }

    #[test]
    fn out_of_range_settings_are_refused_with_the_field_named() {
        let cases = [
            (
                Faults {
                    error_rate: 1.5,
                    ..Faults::default()
                },
                "errorRate",
            ),
            (
                Faults {
                    error_rate: f64::NAN,
                    ..Faults::default()
                },
                "errorRate",
            ),
            (
                Faults {
                    error_status: 418,
                    ..Faults::default()
                },
                "errorStatus",
            ),
            (
                Faults {
                    fail_next: vec![503, 200],
                    ..Faults::default()
                },
                "failNext",
            ),
            (
                Faults {
                    latency_ms: 60_001,
                    ..Faults::default()
                },
                "latencyMs",
            ),
            (
                Faults {
                    outage_secs: 3_601,
                    ..Faults::default()
                },
                "outage",
            ),
        ];
        for (faults, field) in cases {
            let err = faults.validate().unwrap_err();
            assert!(err.0.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_when_parsing() {
        assert!(serde_json::from_str::<Faults>(r#"{"latency": 5}"#).is_err());
        let f: Faults = serde_json::from_str(r#"{"failNext": [503]}"#).unwrap();
        assert_eq!(f.error_status, 503);
    }
}
