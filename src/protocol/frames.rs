//! Control frames (server -> client) and commands (client -> server). Each has its own `type`,
//! distinct from the five event types, so a client switches on `type` alone.

use super::events::SyncEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Frames the server sends besides events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ControlFrame {
    /// First frame after a successful upgrade and authorization.
    #[serde(rename_all = "camelCase")]
    Connected {
        organization_id: String,
        /// The organization's latest event `seq` at subscription time (0: none yet).
        seq: u64,
        /// Seconds between HEARTBEAT frames; N + 10 s of silence means a dead link.
        heartbeat_interval_secs: u64,
        /// The `since` the server is replaying from, when the client asked for a replay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaying_since: Option<u64>,
        user: String,
        role: String,
    },
    /// Sent every heartbeat interval.
    #[serde(rename_all = "camelCase")]
    Heartbeat {
        #[serde(with = "super::timestamp")]
        timestamp: DateTime<Utc>,
        /// The organization's latest `seq`, so a client can see it is not behind.
        seq: u64,
    },
    /// The answer to a client command.
    #[serde(rename_all = "camelCase")]
    CommandResult {
        command_id: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<String>,
        message: String,
    },
    /// The client's `since` is older than the event log keeps (or from another log): refetch
    /// state, then continue from `seq`.
    #[serde(rename_all = "camelCase")]
    ResyncRequired {
        since: u64,
        /// Oldest `seq` the log still holds for the organization (0: empty).
        oldest_seq: u64,
        seq: u64,
        message: String,
    },
    /// A message the server could not use; the connection stays open.
    #[serde(rename_all = "camelCase")]
    Error { code: String, message: String },
}

/// Anything the server sends: a sync event or a control frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerMessage {
    Event(SyncEvent),
    Control(ControlFrame),
}

/// What a sync command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandKind {
    PauseSync,
    ResumeSync,
    CancelSync,
    RetrySync,
}

/// The longest `jobId` a command may name (the server's job ids have 20 characters).
pub const MAX_JOB_ID_CHARS: usize = 64;
/// The longest `commandId` a client may choose.
pub const MAX_COMMAND_ID_CHARS: usize = 128;

/// A command from the client: `{"type":"PAUSE_SYNC","jobId":"…","commandId":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCommand {
    #[serde(rename = "type")]
    pub kind: CommandKind,
    pub job_id: String,
    /// Chosen by the client; a repeated id is answered with the first outcome, not re-applied.
    pub command_id: String,
}

impl CommandKind {
    /// The name on the wire, e.g. `PAUSE_SYNC`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PauseSync => "PAUSE_SYNC",
            Self::ResumeSync => "RESUME_SYNC",
            Self::CancelSync => "CANCEL_SYNC",
            Self::RetrySync => "RETRY_SYNC",
        }
    }
}

/// Why an inbound message was not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandParseError {
    /// Not JSON at all.
    Malformed(String),
    /// JSON whose `type` is not a known command.
    UnknownCommand(String),
    /// A known command with missing or wrong fields.
    Invalid(String),
}

impl CommandParseError {
    /// The ERROR frame that answers it.
    pub fn to_frame(&self) -> ControlFrame {
        let (code, message) = match self {
            Self::Malformed(m) => ("MALFORMED_MESSAGE", format!("not valid JSON: {m}")),
            Self::UnknownCommand(t) => (
                "UNKNOWN_COMMAND",
                format!("unknown command type {t:?}; expected PAUSE_SYNC, RESUME_SYNC, CANCEL_SYNC or RETRY_SYNC"),
            ),
            Self::Invalid(m) => ("INVALID_COMMAND", m.clone()),
        };
        ControlFrame::Error {
            code: code.to_owned(),
            message,
        }
    }
}

impl ClientCommand {
    pub fn parse(raw: &str) -> Result<Self, CommandParseError> {
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| CommandParseError::Malformed(e.to_string()))?;
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let known = ["PAUSE_SYNC", "RESUME_SYNC", "CANCEL_SYNC", "RETRY_SYNC"];
        if !known.contains(&kind) {
            let shown: String = kind.chars().take(40).collect();
            return Err(CommandParseError::UnknownCommand(shown));
        }
        let command: Self =
            serde_json::from_value(value).map_err(|e| CommandParseError::Invalid(e.to_string()))?;
        let chars = |s: &str| s.chars().count();
        if !(1..=MAX_JOB_ID_CHARS).contains(&chars(&command.job_id))
            || !(1..=MAX_COMMAND_ID_CHARS).contains(&chars(&command.command_id))
        {
            return Err(CommandParseError::Invalid(format!(
                "jobId must have 1 to {MAX_JOB_ID_CHARS} characters and commandId 1 to {MAX_COMMAND_ID_CHARS}"
            )));
        }
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_frames_have_their_own_types() {
        let frame = ControlFrame::Connected {
            organization_id: "org-rio".into(),
            seq: 7,
            heartbeat_interval_secs: 25,
            replaying_since: None,
            user: "planner".into(),
            role: "planner".into(),
        };
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["type"], "CONNECTED");
        assert_eq!(json["heartbeatIntervalSecs"], 25);
        let resync = ControlFrame::ResyncRequired {
            since: 1,
            oldest_seq: 50,
            seq: 80,
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_value(&resync).unwrap()["type"],
            "RESYNC_REQUIRED"
        );
    }

    #[test]
    fn server_messages_tell_events_from_control_frames() {
        let event =
            r#"{"type":"SYNC_SUCCESS","jobId":"j","timestamp":"2025-11-28T10:00:30Z","seq":3}"#;
        assert!(matches!(
            serde_json::from_str(event).unwrap(),
            ServerMessage::Event(_)
        ));
        let hb = json!({"type":"HEARTBEAT","timestamp":"2025-11-28T10:00:30.000000Z","seq":3});
        assert!(matches!(
            serde_json::from_value(hb).unwrap(),
            ServerMessage::Control(ControlFrame::Heartbeat { seq: 3, .. })
        ));
    }

    #[test]
    fn commands_parse_and_bad_input_is_classified() {
        let ok = ClientCommand::parse(r#"{"type":"PAUSE_SYNC","jobId":"job-1","commandId":"c1"}"#);
        assert_eq!(ok.unwrap().kind, CommandKind::PauseSync);
        assert!(matches!(
            ClientCommand::parse("{nope"),
            Err(CommandParseError::Malformed(_))
        ));
        assert!(matches!(
            ClientCommand::parse(r#"{"type":"DROP_TABLES"}"#),
            Err(CommandParseError::UnknownCommand(_))
        ));
        assert!(matches!(
            ClientCommand::parse(r#"{"type":"CANCEL_SYNC","jobId":"j"}"#),
            Err(CommandParseError::Invalid(_))
        ));
        let frame = CommandParseError::UnknownCommand("X".into()).to_frame();
        assert!(matches!(frame, ControlFrame::Error { ref code, .. } if code == "UNKNOWN_COMMAND"));
    }

    mod properties {
        use super::*;
        use crate::protocol::arbitrary;
        use proptest::prelude::*;

        const KINDS: [&str; 4] = ["PAUSE_SYNC", "RESUME_SYNC", "CANCEL_SYNC", "RETRY_SYNC"];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_is_a_command_or_a_documented_error(raw in "\\PC{0,300}") {
                let _ = ClientCommand::parse(&raw).map_err(|e| e.to_frame());
            }

            #[test]
            fn a_command_is_accepted_exactly_when_it_follows_the_rules(
                kind in prop::sample::select(vec!["PAUSE_SYNC", "RESUME_SYNC", "CANCEL_SYNC", "RETRY_SYNC", "DROP_SYNC", ""]),
                job in arbitrary::json(),
                id in arbitrary::json(),
                extra in proptest::option::of(arbitrary::json()),
            ) {
                let mut object = json!({"type": kind, "jobId": job, "commandId": id});
                if let Some(extra) = &extra {
                    object["extra"] = extra.clone();
                }
                let within = |v: &serde_json::Value, max: usize| {
                    v.as_str().is_some_and(|s| (1..=max).contains(&s.chars().count()))
                };
                let known = KINDS.contains(&kind);
                let valid = known
                    && extra.is_none()
                    && within(&job, MAX_JOB_ID_CHARS)
                    && within(&id, MAX_COMMAND_ID_CHARS);
                match ClientCommand::parse(&object.to_string()) {
                    Ok(command) => {
                        prop_assert!(valid);
                        prop_assert_eq!(command.kind.as_str(), kind);
                        prop_assert_eq!(Some(command.job_id.as_str()), job.as_str());
                    }
                    Err(CommandParseError::UnknownCommand(_)) => prop_assert!(!known),
                    Err(CommandParseError::Invalid(_)) => prop_assert!(known && !valid),
                    Err(CommandParseError::Malformed(m)) => prop_assert!(false, "valid JSON: {}", m),
                }
            }
        }
    }
}
