//! `use_sync_status_updates`: the card's hook. Connects only in the browser (never during
//! server rendering) to `ws(s)://<page host>/api/ws/sync/{orgId}`, logs the card's console
//! lines, reconnects with exponential backoff and full jitter (at once when the browser comes
//! online or the tab becomes visible), treats heartbeat silence as a dead link, resumes with
//! `?since=` so nothing is missed, stops for good on 4401/4403, and closes on unmount or when
//! `enabled` turns false. The decisions live in [`super::reconnect`]; this file only wires
//! them to gloo-net's WebSocket (a stream of frames read by one task per socket), timers and
//! window events. Sync commands go over the same socket ([`Commands`], [`super::commands`]).

// The wiring runs in the hydrate build only; the server renders the page without a socket.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use super::commands::{CommandBook, Outcome};
use crate::protocol::{events::SyncEvent, frames::CommandKind};
use leptos::prelude::*;
use std::{cell::RefCell, rc::Rc};

/// How long a command waits for its answer before the page gives up on it.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Options of [`use_sync_status_updates`], as on the card.
#[derive(Clone)]
pub struct UseSyncStatusOptions {
    pub organization_id: Signal<String>,
    pub enabled: Signal<bool>,
    pub on_event: Option<Callback<SyncEvent>>,
}

/// What the hook returns: the card's `isConnected` and `lastEvent`, and why it stopped.
#[derive(Clone, Copy)]
pub struct SyncStatus {
    pub is_connected: ReadSignal<bool>,
    pub last_event: ReadSignal<Option<SyncEvent>>,
    /// Set when the server refused for good (4401 / 4403), in words.
    pub stopped: ReadSignal<Option<String>>,
    /// Sync commands over this socket.
    pub commands: Commands,
}

/// Sends a text frame on the connected socket.
type SendText = Box<dyn Fn(&str)>;

/// The page's waiting commands, and the connected socket they go out on.
#[derive(Default)]
struct CommandChannel {
    book: CommandBook,
    /// None until CONNECTED and after a close.
    send: Option<SendText>,
}

impl CommandChannel {
    /// The socket is connected: every waiting command goes out on it.
    fn connected(&mut self, send: SendText) {
        for text in self.book.unanswered() {
            send(&text);
        }
        self.send = Some(send);
    }
}

/// Sends sync commands over the hook's socket; each is answered by the COMMAND_RESULT that
/// carries its `commandId`.
#[derive(Clone, Copy)]
pub struct Commands {
    channel: StoredValue<Rc<RefCell<CommandChannel>>, LocalStorage>,
}

impl Commands {
    /// Sends `kind` for `job_id` (at once when connected, else when the socket connects) and
    /// waits for its answer, at most [`ANSWER_TIMEOUT`].
    pub async fn send(&self, kind: CommandKind, job_id: &str) -> Outcome {
        #[cfg(feature = "hydrate")]
        {
            let Some(channel) = self.channel.try_get_value() else {
                return Err("the page was left".to_owned());
            };
            let command = super::commands::new_command(
                kind,
                job_id,
                js_sys::Date::now() as u64,
                (js_sys::Math::random() * f64::from(u32::MAX)) as u32,
            );
            let answered = {
                let mut channel = channel.borrow_mut();
                let (text, answered) = channel.book.add(&command);
                if let Some(send) = &channel.send {
                    send(&text);
                }
                answered
            };
            let id = command.command_id;
            set_timeout(
                move || {
                    channel.borrow_mut().book.fail(
                        &id,
                        format!(
                            "no answer from the server within {} s",
                            ANSWER_TIMEOUT.as_secs()
                        ),
                    );
                },
                ANSWER_TIMEOUT,
            );
            answered
                .await
                .unwrap_or_else(|_| Err("the page was left".to_owned()))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (kind, job_id);
            Err("sync commands are sent from the browser".to_owned())
        }
    }
}

pub fn use_sync_status_updates(options: UseSyncStatusOptions) -> SyncStatus {
    let (is_connected, set_connected) = signal(false);
    let (last_event, set_last_event) = signal(None::<SyncEvent>);
    let (stopped, set_stopped) = signal(None::<String>);
    let channel = Rc::new(RefCell::new(CommandChannel::default()));
    let commands = Commands {
        channel: StoredValue::new_local(channel.clone()),
    };
    #[cfg(feature = "hydrate")]
    {
        let setters = browser::Setters {
            set_connected,
            set_last_event,
            set_stopped,
            on_event: options.on_event,
        };
        let channel = send_wrapper::SendWrapper::new(channel);
        Effect::new(move |_| {
            let org = options.organization_id.get();
            let enabled = options.enabled.get();
            if !enabled || org.is_empty() {
                setters.set_connected.set(false);
                return;
            }
            let connection = browser::Connection::start(org, setters, (*channel).clone());
            let connection = send_wrapper::SendWrapper::new(connection);
            on_cleanup(move || connection.take().stop());
        });
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (options, set_connected, set_last_event, set_stopped, channel);
    }
    SyncStatus {
        is_connected,
        last_event,
        stopped,
        commands,
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::super::{
        commands::CommandResult,
        reconnect::{Action, ConnectionMachine},
    };
    use super::CommandChannel;
    use crate::protocol::{events::SyncEvent, frames::ControlFrame};
    use futures::{FutureExt, SinkExt, StreamExt};
    use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
    use leptos::prelude::*;
    use std::{cell::RefCell, rc::Rc, task::Poll};

    #[derive(Clone, Copy)]
    pub struct Setters {
        pub set_connected: WriteSignal<bool>,
        pub set_last_event: WriteSignal<Option<SyncEvent>>,
        pub set_stopped: WriteSignal<Option<String>>,
        pub on_event: Option<Callback<SyncEvent>>,
    }

    /// One WebSocket, shared by the task that reads it and whoever sends on it or closes it
    /// (which takes it out: the reading task then ends without a word).
    type Socket = Rc<RefCell<Option<WebSocket>>>;

    struct Inner {
        machine: ConnectionMachine,
        socket: Option<Socket>,
        org: String,
        setters: Setters,
        /// Events received since the last animation frame.
        batch: Vec<SyncEvent>,
        commands: Rc<RefCell<CommandChannel>>,
    }

    type Shared = Rc<RefCell<Inner>>;

    /// A live connection manager; `stop` closes everything.
    pub struct Connection {
        shared: Shared,
        interval: Option<IntervalHandle>,
        listeners: Vec<WindowListenerHandle>,
    }

    fn now() -> f64 {
        js_sys::Date::now()
    }

    fn log(line: &str) {
        web_sys::console::log_1(&line.into());
    }

    fn base_url() -> String {
        let location = window().location();
        let scheme = if location.protocol().unwrap_or_default() == "https:" {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", location.host().unwrap_or_default())
    }

    impl Connection {
        pub fn start(org: String, setters: Setters, commands: Rc<RefCell<CommandChannel>>) -> Self {
            let shared: Shared = Rc::new(RefCell::new(Inner {
                machine: ConnectionMachine::default(),
                socket: None,
                org,
                setters,
                batch: Vec::new(),
                commands,
            }));
            let action = shared.borrow_mut().machine.enable(now());
            apply(&shared, action);
            let ticking = shared.clone();
            let interval = set_interval_with_handle(
                move || {
                    let action = ticking
                        .borrow_mut()
                        .machine
                        .tick(now(), js_sys::Math::random());
                    apply(&ticking, action);
                },
                std::time::Duration::from_millis(500),
            )
            .ok();
            let online = shared.clone();
            let on_online = window_event_listener_untyped("online", move |_| {
                let action = online.borrow_mut().machine.online(now());
                apply(&online, action);
            });
            let visible = shared.clone();
            let on_visible = window_event_listener_untyped("visibilitychange", move |_| {
                if document().visibility_state() == web_sys::VisibilityState::Visible {
                    let action = visible.borrow_mut().machine.visible(now());
                    apply(&visible, action);
                }
            });
            Self {
                shared,
                interval,
                listeners: vec![on_online, on_visible],
            }
        }

        pub fn stop(self) {
            if let Some(interval) = self.interval {
                interval.clear();
            }
            for listener in self.listeners {
                listener.remove();
            }
            let action = self.shared.borrow_mut().machine.disable();
            apply(&self.shared, action);
            let mut inner = self.shared.borrow_mut();
            if let Some(socket) = inner.socket.take() {
                close(&socket, 1000);
            }
            inner.setters.set_connected.set(false);
            let mut commands = inner.commands.borrow_mut();
            commands.send = None;
            commands
                .book
                .fail_all("the page closed its connection before the server answered");
        }
    }

    /// Closes the socket with `code` (1000 or an application code; else 1000); its reading task
    /// ends without reporting the close.
    fn close(socket: &Socket, code: u16) {
        let code = if code == 1000 || (3000..5000).contains(&code) {
            code
        } else {
            1000
        };
        if let Some(ws) = socket.borrow_mut().take() {
            let _ = ws.close(Some(code), None);
        }
    }

    fn apply(shared: &Shared, action: Action) {
        match action {
            Action::Connect => open(shared),
            Action::Close { code } => {
                let socket = shared.borrow_mut().socket.take();
                shared.borrow().commands.borrow_mut().send = None;
                if let Some(socket) = socket {
                    close(&socket, code);
                    shared.borrow().setters.set_connected.set(false);
                    log("[WebSocket] Disconnected");
                }
            }
            Action::Schedule { .. } | Action::None => {}
        }
    }

    fn open(shared: &Shared) {
        let (url, since) = {
            let inner = shared.borrow();
            (
                format!("{}/api/ws/sync/{}", base_url(), inner.org),
                inner.machine.since(),
            )
        };
        log(&format!("[WebSocket] Connecting to: {url}"));
        let full = match since {
            Some(seq) => format!("{url}?since={seq}"),
            None => url,
        };
        let ws = match WebSocket::open(&full) {
            Ok(ws) => ws,
            Err(e) => {
                web_sys::console::warn_1(
                    &format!("[WebSocket] Error: Failed to connect: {e}").into(),
                );
                let action = shared.borrow_mut().machine.closed(
                    1006,
                    "cannot open",
                    now(),
                    js_sys::Math::random(),
                );
                apply(shared, action);
                return;
            }
        };
        let socket: Socket = Rc::new(RefCell::new(Some(ws)));
        shared.borrow_mut().socket = Some(socket.clone());
        let shared = shared.clone();
        leptos::task::spawn_local(async move {
            loop {
                // Borrowed only while polled: commands are sent on it between frames.
                let next = futures::future::poll_fn(|cx| match socket.borrow_mut().as_mut() {
                    Some(ws) => ws.poll_next_unpin(cx),
                    None => Poll::Ready(None),
                })
                .await;
                match next {
                    Some(Ok(Message::Text(text))) => handle_frame(&shared, &socket, &text),
                    Some(Ok(Message::Bytes(_))) => {}
                    Some(Err(WebSocketError::ConnectionClose(event))) => {
                        closed(&shared, &socket, event.code, &event.reason);
                        return;
                    }
                    Some(Err(_)) => {
                        web_sys::console::warn_1(&"[WebSocket] Error: Failed to connect".into());
                    }
                    None => return,
                }
            }
        });
    }

    /// The server or the network closed `socket` (not this page: it takes the socket out first).
    fn closed(shared: &Shared, socket: &Socket, code: u16, reason: &str) {
        let current = shared
            .borrow()
            .socket
            .as_ref()
            .is_some_and(|s| Rc::ptr_eq(s, socket));
        if !current {
            return;
        }
        socket.borrow_mut().take();
        shared.borrow_mut().socket = None;
        shared.borrow().commands.borrow_mut().send = None;
        shared.borrow().setters.set_connected.set(false);
        log(&format!(
            "[WebSocket] Disconnected (code {code}{})",
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        ));
        let action =
            shared
                .borrow_mut()
                .machine
                .closed(code, reason, now(), js_sys::Math::random());
        let stop = shared
            .borrow()
            .machine
            .stop_reason()
            .map(|(_, why)| why.to_owned());
        if let Some(why) = stop {
            web_sys::console::warn_1(&format!("[WebSocket] Error: {why}").into());
            shared.borrow().setters.set_stopped.set(Some(why));
        }
        apply(shared, action);
    }

    /// Hands the events received since the last frame to the page, in order.
    fn flush(shared: &Shared) {
        let (events, setters) = {
            let mut inner = shared.borrow_mut();
            (std::mem::take(&mut inner.batch), inner.setters)
        };
        let Some(last) = events.last().cloned() else {
            return;
        };
        if let Some(callback) = setters.on_event {
            for event in events {
                // `None`: the page was left since the frame was asked for.
                if callback.try_run(event).is_none() {
                    return;
                }
            }
        }
        setters.set_last_event.set(Some(last));
    }

    /// The type of a frame, read without decoding the rest of it.
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }

    /// Frames are read with `from_slice`, as every JSON the browser reads: serde_json's
    /// deserializer is generic over its reader, and `from_str` would put a second copy of it
    /// (and of every type it reads) in the wasm.
    fn handle_frame(shared: &Shared, socket: &Socket, text: &str) {
        let Ok(head) = serde_json::from_slice::<Head>(text.as_bytes()) else {
            return;
        };
        shared.borrow_mut().machine.frame_received(now());
        match head.kind.as_ref() {
            "CONNECTED" => {
                // The server has authorized and subscribed the socket: it is open.
                let action = shared.borrow_mut().machine.opened(now());
                shared.borrow().setters.set_connected.set(true);
                shared.borrow().setters.set_stopped.set(None);
                log("[WebSocket] Connected to sync status updates");
                apply(shared, action);
                let value: serde_json::Value =
                    serde_json::from_slice(text.as_bytes()).unwrap_or_default();
                if let Some(secs) = value.get("heartbeatIntervalSecs").and_then(|v| v.as_u64()) {
                    shared.borrow_mut().machine.set_heartbeat_interval(secs);
                }
                if let Some(seq) = value.get("seq").and_then(|v| v.as_u64()) {
                    if shared.borrow().machine.since().is_none() {
                        shared.borrow_mut().machine.record_seq(seq);
                    }
                }
                // Commands go out once the server has subscribed this socket.
                let socket = socket.clone();
                shared
                    .borrow()
                    .commands
                    .borrow_mut()
                    .connected(Box::new(move |text| {
                        if let Some(ws) = socket.borrow_mut().as_mut() {
                            // An open socket takes a frame at once.
                            let _ = ws.send(Message::Text(text.to_owned())).now_or_never();
                        }
                    }));
            }
            "COMMAND_RESULT" => {
                if let Ok(ControlFrame::CommandResult {
                    command_id,
                    ok,
                    message,
                    ..
                }) = serde_json::from_slice(text.as_bytes())
                {
                    shared
                        .borrow()
                        .commands
                        .borrow_mut()
                        .book
                        .answer(&command_id, CommandResult { ok, message });
                }
            }
            "RESYNC_REQUIRED" => {
                let value: serde_json::Value =
                    serde_json::from_slice(text.as_bytes()).unwrap_or_default();
                let mut inner = shared.borrow_mut();
                inner.machine.reset_seq();
                if let Some(seq) = value.get("seq").and_then(|v| v.as_u64()) {
                    inner.machine.record_seq(seq);
                }
            }
            "HEARTBEAT" | "ERROR" => {}
            // A sync event is decoded straight into its type (one pass, no JSON tree).
            _ => {
                if let Ok(event) = serde_json::from_slice::<SyncEvent>(text.as_bytes()) {
                    if let Some(seq) = event.seq {
                        shared.borrow_mut().machine.record_seq(seq);
                    }
                    // Batch per animation frame: a burst of events updates the page once.
                    let first = {
                        let mut inner = shared.borrow_mut();
                        inner.batch.push(event);
                        inner.batch.len() == 1
                    };
                    if first {
                        let shared = shared.clone();
                        request_animation_frame(move || flush(&shared));
                    }
                }
            }
        }
    }
}
