//! Sync commands (pause / resume / cancel / retry) over the page's own socket. Each command
//! gets a fresh `commandId` and goes out as soon as the socket is connected, and again on every
//! new connection until it is answered: the server applies a `commandId` once and answers a
//! repeat with the first outcome, so a command sent just before a reconnect is neither lost
//! nor applied twice. The COMMAND_RESULT with that `commandId` settles it; a timeout gives up.

// The wiring runs in the hydrate build only; the server renders the page without a socket.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use crate::protocol::frames::{ClientCommand, CommandKind};
use futures::channel::oneshot;

/// What the server answered to a sync command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandResult {
    pub ok: bool,
    pub message: String,
}

/// A command's answer, or why none came.
pub type Outcome = Result<CommandResult, String>;

struct Waiting {
    command_id: String,
    /// The command frame, as sent on each connection.
    text: String,
    answer: oneshot::Sender<Outcome>,
}

/// The commands of a page that wait for their answer. Pure: the socket wiring is in
/// `sync_status`.
#[derive(Default)]
pub struct CommandBook {
    waiting: Vec<Waiting>,
}

impl CommandBook {
    /// Takes `command` in; returns its frame (to send now when connected) and its answer.
    pub fn add(&mut self, command: &ClientCommand) -> (String, oneshot::Receiver<Outcome>) {
        let text = serde_json::to_string(command).expect("a command serializes");
        let (answer, answered) = oneshot::channel();
        self.waiting.push(Waiting {
            command_id: command.command_id.clone(),
            text: text.clone(),
            answer,
        });
        (text, answered)
    }

    /// The frames of every command still waiting, in the order they were sent: what a new
    /// connection sends.
    pub fn unanswered(&self) -> Vec<String> {
        self.waiting.iter().map(|w| w.text.clone()).collect()
    }

    /// Settles the command that `command_id` names; false when none waits for it (an answer
    /// already given, or another page's command).
    pub fn answer(&mut self, command_id: &str, result: CommandResult) -> bool {
        self.settle(command_id, Ok(result))
    }

    /// Gives up on the command that `command_id` names.
    pub fn fail(&mut self, command_id: &str, why: String) -> bool {
        self.settle(command_id, Err(why))
    }

    /// Gives up on every waiting command (the page is closing its socket for good).
    pub fn fail_all(&mut self, why: &str) {
        for waiting in self.waiting.drain(..) {
            let _ = waiting.answer.send(Err(why.to_owned()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn settle(&mut self, command_id: &str, outcome: Outcome) -> bool {
        let Some(at) = self.waiting.iter().position(|w| w.command_id == command_id) else {
            return false;
        };
        let _ = self.waiting.remove(at).answer.send(outcome);
        true
    }
}

/// A fresh command for `job_id`; `stamp` and `random` make its id unique to this page.
pub fn new_command(kind: CommandKind, job_id: &str, stamp: u64, random: u32) -> ClientCommand {
    ClientCommand {
        kind,
        job_id: job_id.to_owned(),
        command_id: format!("ui-{stamp}-{random:08x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn command(job: &str, n: u32) -> ClientCommand {
        new_command(CommandKind::PauseSync, job, 1_700_000_000_000, n)
    }

    #[test]
    fn an_answer_settles_the_command_it_names_and_no_other() {
        let mut book = CommandBook::default();
        let (first_text, first) = book.add(&command("job-1", 1));
        let (_, second) = book.add(&command("job-2", 2));
        assert_eq!(
            serde_json::from_str::<ClientCommand>(&first_text).unwrap(),
            command("job-1", 1)
        );
        let result = CommandResult {
            ok: true,
            message: "paused".into(),
        };
        assert!(book.answer("ui-1700000000000-00000002", result.clone()));
        assert!(
            !book.answer("ui-1700000000000-00000002", result.clone()),
            "answered once"
        );
        assert!(!book.answer("ui-other-page", result.clone()));
        assert_eq!(block_on(second), Ok(Ok(result)));
        assert_eq!(book.unanswered(), [first_text], "the first still waits");
        assert!(book.fail("ui-1700000000000-00000001", "no answer".into()));
        assert_eq!(block_on(first), Ok(Err("no answer".into())));
        assert!(book.is_empty());
    }

    #[test]
    fn unanswered_commands_are_sent_again_in_order_until_answered() {
        let mut book = CommandBook::default();
        let texts: Vec<String> = (0..3).map(|n| book.add(&command("job", n)).0).collect();
        assert_eq!(book.unanswered(), texts);
        book.answer(
            "ui-1700000000000-00000001",
            CommandResult {
                ok: true,
                message: String::new(),
            },
        );
        assert_eq!(book.unanswered(), [texts[0].clone(), texts[2].clone()]);
    }

    #[test]
    fn closing_for_good_fails_every_waiting_command() {
        let mut book = CommandBook::default();
        let (_, a) = book.add(&command("job", 1));
        let (_, b) = book.add(&command("job", 2));
        book.fail_all("the page was left");
        assert_eq!(block_on(a), Ok(Err("the page was left".into())));
        assert_eq!(block_on(b), Ok(Err("the page was left".into())));
        assert!(book.unanswered().is_empty());
    }
}
