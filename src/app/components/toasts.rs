//! Toasts: short messages stacked in a corner, announced to assistive technology, each gone
//! after a few seconds. `provide_toasts()` once at the page root, `use_toasts()` anywhere below.

use leptos::prelude::*;

/// Toasts visible at once; older ones give way.
const MAX_VISIBLE: usize = 4;
/// How long a toast stays, in milliseconds.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const LIFETIME_MS: u64 = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastKind {
    Info,
    Success,
    Error,
}

impl ToastKind {
    /// Its name, as tests read it from `data-kind`.
    fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Success => "success",
            Self::Error => "error",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Info => "toast info",
            Self::Success => "toast success",
            Self::Error => "toast error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub id: u64,
    pub kind: ToastKind,
    pub text: String,
}

/// Handle to push toasts.
#[derive(Clone, Copy)]
pub struct Toasts {
    list: RwSignal<Vec<Toast>>,
    next: RwSignal<u64>,
}

impl Toasts {
    pub fn push(&self, kind: ToastKind, text: impl Into<String>) {
        let id = self.next.get_untracked();
        self.next.set(id + 1);
        self.list.update(|list| {
            list.push(Toast {
                id,
                kind,
                text: text.into(),
            });
            let excess = list.len().saturating_sub(MAX_VISIBLE);
            list.drain(..excess);
        });
        #[cfg(feature = "hydrate")]
        {
            let list = self.list;
            set_timeout(
                move || list.update(|l| l.retain(|t| t.id != id)),
                std::time::Duration::from_millis(LIFETIME_MS),
            );
        }
    }

    pub fn info(&self, text: impl Into<String>) {
        self.push(ToastKind::Info, text);
    }

    pub fn success(&self, text: impl Into<String>) {
        self.push(ToastKind::Success, text);
    }

    pub fn error(&self, text: impl Into<String>) {
        self.push(ToastKind::Error, text);
    }
}

pub fn provide_toasts() -> Toasts {
    let toasts = Toasts {
        list: RwSignal::new(Vec::new()),
        next: RwSignal::new(0),
    };
    provide_context(toasts);
    toasts
}

pub fn use_toasts() -> Toasts {
    use_context::<Toasts>().expect("provide_toasts() above")
}

#[component]
pub fn ToastHost() -> impl IntoView {
    let toasts = use_toasts();
    view! {
        <div class="toasts" aria-live="polite" role="log" data-testid="toasts">
            <For each=move || toasts.list.get() key=|t| t.id let:toast>
                <div class=toast.kind.class() data-testid="toast" data-kind=toast.kind.name()>
                    {toast.text.clone()}
                </div>
            </For>
        </div>
    }
}
