//! Sync jobs, queue items and conflicts: their states and the job lifecycle as a pure state
//! machine, plus the retry backoff.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Paused,
    Completed,
    CompletedWithConflicts,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::CompletedWithConflicts,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::CompletedWithConflicts => "completed_with_conflicts",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Finished: nothing runs until a retry.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::CompletedWithConflicts | Self::Failed | Self::Cancelled
        )
    }

    /// The status after `command`, or why the command does not apply.
    pub fn after(self, command: JobCommand) -> Result<JobStatus, String> {
        use JobCommand as C;
        use JobStatus as S;
        match (command, self) {
            (C::Pause, S::Queued | S::Running) => Ok(S::Paused),
            (C::Pause, S::Paused) => Ok(S::Paused),
            (C::Resume, S::Paused) => Ok(S::Running),
            (C::Resume, S::Queued | S::Running) => Ok(self),
            (C::Cancel, S::Queued | S::Running | S::Paused) => Ok(S::Cancelled),
            (C::Cancel, S::Cancelled) => Ok(S::Cancelled),
            (C::Retry, S::Failed | S::CompletedWithConflicts) => Ok(S::Running),
            (command, status) => Err(format!(
                "cannot {} a {} job",
                command.verb(),
                status.as_str()
            )),
        }
    }

    /// The status of a job whose items are all done.
    pub fn finished(synced: i64, conflicts: i64, failed: i64) -> JobStatus {
        let _ = synced;
        if failed > 0 {
            Self::Failed
        } else if conflicts > 0 {
            Self::CompletedWithConflicts
        } else {
            Self::Completed
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobCommand {
    Pause,
    Resume,
    Cancel,
    Retry,
}

impl JobCommand {
    pub fn verb(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
            Self::Retry => "retry",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Pending,
    InFlight,
    Synced,
    Conflict,
    Failed,
    Cancelled,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Synced => "synced",
            Self::Conflict => "conflict",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::InFlight,
            Self::Synced,
            Self::Conflict,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// How a conflict is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Keep the planner's values; re-queued on the new base version.
    UseLocal,
    /// Keep PEMS's values; the local change to those fields is dropped.
    UsePems,
    /// Chosen values per field; re-queued on the new base version.
    Merge,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UseLocal => "use_local",
            Self::UsePems => "use_pems",
            Self::Merge => "merge",
        }
    }
}

/// Exponential backoff with full jitter: attempt n (1-based) waits a uniformly random time in
/// `[0, min(cap, base * 2^(n-1))]`. `unit` in [0, 1) is the random draw, so the function is pure.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_lifecycle_allows_only_sensible_commands() {
        use JobCommand::*;
        use JobStatus::*;
        assert_eq!(Running.after(Pause), Ok(Paused));
        assert_eq!(Paused.after(Resume), Ok(Running));
        assert_eq!(Paused.after(Cancel), Ok(Cancelled));
        assert_eq!(Failed.after(Retry), Ok(Running));
        assert_eq!(Paused.after(Pause), Ok(Paused), "idempotent");
        assert!(Completed.after(Pause).is_err());
        assert!(Completed.after(Retry).is_err());
        assert!(Running.after(Retry).is_err());
        assert!(
            Cancelled.after(Retry).is_err(),
            "cancelled changes went back to drafts"
        );
        assert!(Cancelled
            .after(Resume)
            .unwrap_err()
            .contains("cannot resume a cancelled job"));
    }

    #[test]
    fn a_finished_job_reports_failures_before_conflicts() {
        assert_eq!(JobStatus::finished(5, 0, 0), JobStatus::Completed);
        assert_eq!(
            JobStatus::finished(4, 1, 0),
            JobStatus::CompletedWithConflicts
        );
        assert_eq!(JobStatus::finished(3, 1, 1), JobStatus::Failed);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(10, base, cap, 1.0), cap);
        assert_eq!(backoff(3, base, cap, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(3, base, cap, 0.0), Duration::ZERO);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ItemStatus::parse("in_flight"), Some(ItemStatus::InFlight));
    }
}
