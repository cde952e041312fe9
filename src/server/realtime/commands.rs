//! Sync commands sent over the socket (PAUSE_SYNC, RESUME_SYNC, CANCEL_SYNC, RETRY_SYNC):
//! role-checked, applied once per `commandId` (a repeat gets the first answer again), and
//! answered with COMMAND_RESULT.

use crate::{
    domain::role::Role,
    protocol::frames::{ClientCommand, ControlFrame},
    server::store::Store,
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
        store: &Store,
        org: &str,
        role: Role,
        command: ClientCommand,
    ) -> ControlFrame {
        let key = (org.to_owned(), command.command_id.clone());
        if let Some(answer) = self.answers.lock().expect("answers lock").by_key.get(&key) {
            return answer.clone();
        }
        let answer = self.apply(store, org, role, &command).await;
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
        store: &Store,
        org: &str,
        role: Role,
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
        // The sync engine registers its jobs here; until a job exists the id is unknown.
        let _ = store;
        result(false, format!("no sync job {} in {org}", command.job_id))
    }
}
