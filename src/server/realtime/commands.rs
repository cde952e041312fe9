//! Sync commands sent over the socket (PAUSE_SYNC, RESUME_SYNC, CANCEL_SYNC, RETRY_SYNC):
//! role-checked, applied once per `commandId` and answered with COMMAND_RESULT. Answers are
//! kept in the database, so a repeat sent to any instance gets the first answer again and
//! changes nothing; a successful command's answer is recorded with its state change.

use crate::{
    domain::{role::Role, sync::JobCommand},
    protocol::frames::CommandKind,
    protocol::frames::{ClientCommand, ControlFrame},
    server::{
        store::commands::{CommandAnswer, CommandRecord},
        sync::engine::{CommandError, Engine},
    },
};

/// Applies `command` for a member of `org` with `role` (`user`: id and name), once per
/// command id.
pub async fn handle(
    engine: &Engine,
    org: &str,
    role: Role,
    user: (i64, &str),
    command: ClientCommand,
) -> ControlFrame {
    let frame = |answer: CommandAnswer| ControlFrame::CommandResult {
        command_id: command.command_id.clone(),
        ok: answer.ok,
        job_id: Some(command.job_id.clone()),
        message: answer.message,
    };
    let internal = |e: anyhow::Error| {
        tracing::error!("sync command failed: {e:#}");
        frame(CommandAnswer {
            ok: false,
            message: "internal error; see the server log".into(),
        })
    };
    let store = engine.store();
    match store.command_answer(org, &command.command_id).await {
        Ok(Some(first)) => return frame(first),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let applied = apply(engine, org, role, user, &command).await;
    let answer = match applied {
        Ok(message) => CommandAnswer { ok: true, message },
        Err(Refusal::Failed(message)) => {
            // Perhaps a repeat applied meanwhile on another instance: then its answer counts.
            return match store.command_answer(org, &command.command_id).await {
                Ok(Some(first)) => frame(first),
                Ok(None) => frame(CommandAnswer { ok: false, message }),
                Err(e) => internal(e),
            };
        }
        Err(Refusal::Refused(message)) => {
            let record = CommandRecord {
                org: org.to_owned(),
                command_id: command.command_id.clone(),
                answer: CommandAnswer { ok: false, message },
            };
            match store.record_command(&record).await {
                Ok(first) => first,
                Err(e) => return internal(e),
            }
        }
    };
    frame(answer)
}

/// Why a command changed nothing.
enum Refusal {
    /// Not allowed, or not possible in the job's state: the answer stays the same.
    Refused(String),
    /// The server failed or the job kept changing; a repeat may succeed.
    Failed(String),
}

async fn apply(
    engine: &Engine,
    org: &str,
    role: Role,
    (user_id, username): (i64, &str),
    command: &ClientCommand,
) -> Result<String, Refusal> {
    if !role.can_sync() {
        return Err(Refusal::Refused(format!(
            "the {role} role cannot send sync commands; planner or admin required"
        )));
    }
    let kind = match command.kind {
        CommandKind::PauseSync => JobCommand::Pause,
        CommandKind::ResumeSync => JobCommand::Resume,
        CommandKind::CancelSync => JobCommand::Cancel,
        CommandKind::RetrySync => JobCommand::Retry,
    };
    engine
        .command(
            org,
            &command.job_id,
            kind,
            (Some(user_id), username),
            Some(&command.command_id),
        )
        .await
        .map_err(|e| match e {
            CommandError::Refused(message) => Refusal::Refused(message),
            CommandError::Failed(message) => Refusal::Failed(message),
        })
}
