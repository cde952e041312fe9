//! Sync commands sent over the socket (PAUSE_SYNC, RESUME_SYNC, CANCEL_SYNC, RETRY_SYNC):
//! role-checked, applied once and answered with COMMAND_RESULT. An applied command's answer
//! is recorded with its state change, under its sender, command and job as well as its id
//! ([`CommandKey`]), so a repeat sent to any instance gets the first answer again and changes
//! nothing. A refusal is not recorded: a repeat is decided anew.

use crate::{
    domain::{role::Role, sync::JobCommand},
    protocol::frames::CommandKind,
    protocol::frames::{ClientCommand, ControlFrame},
    server::{
        store::commands::{CommandAnswer, CommandKey},
        sync::engine::{CommandError, Engine},
    },
};

/// Applies `command` for a member of `org` (`user`: id and name), once per sender, command id,
/// command and job. The role is read at each command, so a lowered role or a removed
/// membership takes effect on the next one.
pub async fn handle(
    engine: &Engine,
    org: &str,
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
    let key = CommandKey {
        org: org.to_owned(),
        user_id: user.0,
        command_id: command.command_id.clone(),
        command: command.kind.as_str(),
        job_id: command.job_id.clone(),
    };
    let store = engine.store();
    let role = match store.member_role(user.0, org).await {
        Ok(Some(role)) => role,
        Ok(None) => {
            return frame(CommandAnswer {
                ok: false,
                message: format!("you are no longer a member of {org}"),
            })
        }
        Err(e) => return internal(e),
    };
    match store.command_answer(&key).await {
        Ok(Some(first)) => return frame(first),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    match apply(engine, role, user, &command, key.clone()).await {
        Ok(message) => frame(CommandAnswer { ok: true, message }),
        Err(Refusal::Refused(message)) => frame(CommandAnswer { ok: false, message }),
        // Perhaps a repeat was applied meanwhile on another instance: then its answer counts.
        Err(Refusal::Failed(message)) => match store.command_answer(&key).await {
            Ok(Some(first)) => frame(first),
            Ok(None) => frame(CommandAnswer { ok: false, message }),
            Err(e) => internal(e),
        },
    }
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
    role: Role,
    (user_id, username): (i64, &str),
    command: &ClientCommand,
    key: CommandKey,
) -> Result<String, Refusal> {
    let org = key.org.clone();
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
            &org,
            &command.job_id,
            kind,
            (Some(user_id), username),
            Some(key),
        )
        .await
        .map_err(|e| match e {
            CommandError::Refused(message) => Refusal::Refused(message),
            CommandError::Failed(message) => Refusal::Failed(message),
        })
}
