//! The records of an organization's page, kept fresh without blocking a frame.
//!
//! A refetch never runs twice at once: asked for while one runs, it runs once more when that
//! one ends (so a burst of SYNC_SUCCESS events costs one or two fetches, and an answer never
//! overwrites a newer one). The answer (about 1.3 MB for 2,000 records) is read as bytes and
//! its records are found and decoded a few milliseconds' worth at a time, one slice per
//! animation frame, so that the page keeps drawing frames while 2,000 records are decoded.
// The server renders the page without fetching (the browser loads the list), so most of this
// is used only by the hydrate build and by the unit tests.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use crate::app::api::records::{RecordFilter, RecordRow};
use leptos::prelude::*;

mod list_scan;

/// Records fetched at once (the grid renders only the rows in view).
const PAGE_SIZE: i64 = 5000;

/// The list and what the page shows about it.
#[derive(Clone, Copy)]
pub struct RecordsFeed {
    pub rows: ReadSignal<Vec<RecordRow>>,
    pub total: ReadSignal<i64>,
    pub categories: ReadSignal<Vec<String>>,
    pub load_error: ReadSignal<Option<String>>,
    /// Fetches the list again (coalesced with a fetch already running).
    pub refetch: Callback<()>,
}

/// Whether a refetch is running and whether another was asked for meanwhile.
#[derive(Debug, Default)]
pub struct Coalescer {
    running: bool,
    again: bool,
}

impl Coalescer {
    /// A fetch is wanted: true when it should start now (none is running).
    pub fn request(&mut self) -> bool {
        if self.running {
            self.again = true;
            false
        } else {
            self.running = true;
            true
        }
    }

    /// The running fetch ended: true when another should start at once.
    pub fn finished(&mut self) -> bool {
        if std::mem::take(&mut self.again) {
            true
        } else {
            self.running = false;
            false
        }
    }
}

/// Loads the records of `org` that match `filter`, again whenever either changes or
/// `refetch` is called.
pub fn use_records(org: Signal<String>, filter: Signal<RecordFilter>) -> RecordsFeed {
    let (rows, set_rows) = signal(Vec::<RecordRow>::new());
    let (total, set_total) = signal(0i64);
    let (categories, set_categories) = signal(Vec::<String>::new());
    let (load_error, set_load_error) = signal(None::<String>);
    let coalescer = StoredValue::new(Coalescer::default());

    let start = move || {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            // `None` once the page is gone: then the fetch ends quietly.
            let wanted = move || Some((org.try_get_untracked()?, filter.try_get_untracked()?));
            while let Some(asked) = wanted() {
                let answer = browser::fetch(&asked.0, &asked.1.query(PAGE_SIZE)).await;
                // An answer for another org or filter is dropped: a newer fetch follows.
                if wanted().as_ref() == Some(&asked) {
                    match answer {
                        Ok(page) => {
                            set_total.set(page.total);
                            set_categories.set(page.categories);
                            set_rows.set(page.items);
                            set_load_error.set(None);
                        }
                        Err(message) => set_load_error.set(Some(message)),
                    }
                }
                if !coalescer
                    .try_update_value(Coalescer::finished)
                    .unwrap_or(false)
                {
                    break;
                }
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (set_rows, set_total, set_categories, set_load_error);
    };
    let refetch = Callback::new(move |_| {
        if coalescer
            .try_update_value(Coalescer::request)
            .unwrap_or(false)
        {
            start();
        }
    });
    Effect::new(move |_| {
        org.track();
        filter.track();
        refetch.run(());
    });
    RecordsFeed {
        rows,
        total,
        categories,
        load_error,
        refetch,
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::list_scan::{decode_row, Items};
    use crate::app::api::{http::exchange, records::RecordPage};
    use leptos::prelude::*;
    use std::{
        cell::{Cell, RefCell},
        future::poll_fn,
        rc::Rc,
        task::{Poll, Waker},
    };

    /// Decoding runs in slices of about this many milliseconds, one per animation frame.
    const SLICE_MS: f64 = 3.0;

    fn now() -> f64 {
        window()
            .performance()
            .map(|p| p.now())
            .unwrap_or_else(js_sys::Date::now)
    }

    /// Resolves at the next animation frame, so that the browser draws one frame (and handles
    /// input) between two slices.
    async fn next_frame() {
        let done = Rc::new(Cell::new(false));
        let waker = Rc::new(RefCell::new(None::<Waker>));
        {
            let (done, waker) = (done.clone(), waker.clone());
            request_animation_frame(move || {
                done.set(true);
                if let Some(w) = waker.borrow_mut().take() {
                    w.wake();
                }
            });
        }
        poll_fn(|cx| {
            if done.get() {
                Poll::Ready(())
            } else {
                *waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// `GET /api/orgs/{org}/records?{query}`, decoded a slice at a time.
    pub async fn fetch(org: &str, query: &str) -> Result<RecordPage, String> {
        let answer = exchange("GET", &format!("/api/orgs/{org}/records?{query}"), None)
            .await
            .map_err(|e| e.message)?;
        if !answer.is_success() {
            return Err(answer.error().message);
        }
        let body = answer.body;
        let unexpected = |e: String| format!("unexpected answer: {e}");
        // Decoding starts at a frame of its own, not in the task that received the answer.
        next_frame().await;
        let mut items = Items::new(&body).ok_or_else(|| unexpected("not a records list".into()))?;
        let mut rows = Vec::new();
        let mut slice_started = now();
        for range in items.by_ref() {
            rows.push(decode_row(&body[range]).map_err(|e| unexpected(e.to_string()))?);
            if rows.len() % 4 == 0 && now() - slice_started > SLICE_MS {
                next_frame().await;
                slice_started = now();
            }
        }
        let rest = items
            .rest()
            .ok_or_else(|| unexpected("a malformed list".into()))?;
        let mut page: RecordPage =
            serde_json::from_slice(&rest).map_err(|e| unexpected(e.to_string()))?;
        page.items = rows;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refetch_asked_for_while_one_runs_runs_once_afterwards() {
        let mut c = Coalescer::default();
        assert!(c.request(), "the first starts");
        assert!(!c.request(), "a second waits");
        assert!(!c.request(), "and a third joins it");
        assert!(c.finished(), "one more runs");
        assert!(!c.finished(), "then nothing");
        assert!(c.request(), "and the next starts at once");
    }
}
