//! Sync commands sent over the socket (PAUSE_SYNC, RESUME_SYNC, CANCEL_SYNC, RETRY_SYNC):
//! role-checked, applied once per `commandId` (a repeat gets the first answer again), and
//! answered with COMMAND_RESULT.

use crate::{
    domain::{role::Role, sync::JobCommand},
    protocol::frames::CommandKind,
    protocol::frames::{ClientCommand, ControlFrame},
    server::sync::engine::Engine,
};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

/// Answers remembered for idempotency.
const REMEMBERED: usize = 10_000;

#[derive(Clone, Default)]
pub struct CommandDesk {
    answers: Arc<Mutex<Answers>>,
}

#[derive(Default)]
struct Answers {
    by_key: HashMap<(String, String), ControlFrame>,
    order: VecDeque<(String, String)>,
}

impl CommandDesk {
    /// Applies `command` for a member of `org` with `role`, once per command id.
    pub async fn handle(
        &self,
        engine: &Engine,
        org: &str,
        role: Role,
        user: (i64, &str),
        command: ClientCommand,
    ) -> ControlFrame {
        let key = (org.to_owned(), command.command_id.clone());
        if let Some(answer) = self.answers.lock().expect("answers lock").by_key.get(&key) {
            return answer.clone();
        }
        let answer = self.apply(engine, org, role, user, &command).await;
        let mut answers = self.answers.lock().expect("answers lock");
        if let Some(first) = answers.by_key.get(&key) {
            return first.clone();
        }
        answers.by_key.insert(key.clone(), answer.clone());
        answers.order.push_back(key);
        while answers.order.len() > REMEMBERED {
            if let Some(old) = answers.order.pop_front() {
                answers.by_key.remove(&old);
            }
        }
        answer
    }

    async fn apply(
        &self,
        engine: &Engine,
        org: &str,
        role: Role,
        (user_id, username): (i64, &str),
        command: &ClientCommand,
    ) -> ControlFrame {
        let result = |ok: bool, message: String| ControlFrame::CommandResult {
            command_id: command.command_id.clone(),
            ok,
            job_id: Some(command.job_id.clone()),
            message,
        };
        if !role.can_sync() {
            return result(
                false,
                format!("the {role} role cannot send sync commands; planner or admin required"),
            );
        }
        let kind = match command.kind {
            CommandKind::PauseSync => JobCommand::Pause,
            CommandKind::ResumeSync => JobCommand::Resume,
            CommandKind::CancelSync => JobCommand::Cancel,
            CommandKind::RetrySync => JobCommand::Retry,
        };
        match engine
            .command(org, &command.job_id, kind, (Some(user_id), username))
            .await
        {
            Ok(message) => result(true, message),
            Err(message) => result(false, message),
        }
    }
}
