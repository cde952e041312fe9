//! pfa-sync: planners edit PFA records, commit them, and a sync job writes them to PEMS while
//! the server streams every step to the organization's browsers over a WebSocket.
//!
//! Module map (see `docs/architecture.md`):
//! - [`protocol`]: wire types shared by the server and the browser (serde only, no I/O).
//! - [`domain`]: PFA records, drafts, validation (pure).
//! - [`app`]: the Leptos UI, server-rendered and hydrated in the browser.
//! - `server`: everything that only exists on the server (feature `ssr`).
#![recursion_limit = "256"]

pub mod app;
pub mod domain;
pub mod protocol;

#[cfg(feature = "ssr")]
pub mod server;

/// Entry point of the WebAssembly bundle: attaches the UI to the server-rendered HTML. The
/// hydration is asynchronous because some pages are lazy routes, split into their own wasm
/// modules (`app::pages::lazy`): on such a page the module is fetched before hydration.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_lazy(app::App);
}
