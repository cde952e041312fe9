//! What the lazily loaded parts of the app share: a split module (`cargo leptos build --split`)
//! whose fetch failed. Leptos's own `#[lazy]` and `#[lazy_route]` panic then, which ends the
//! whole app; the app's split functions are `fallible` instead and show [`NotLoaded`] as a
//! message with a reload. The split loader keeps a failed fetch for the life of the page, so
//! only a reload fetches the module again.

/// A split module could not be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLoaded;

impl From<leptos::wasm_split::SplitLoaderError> for NotLoaded {
    fn from(_: leptos::wasm_split::SplitLoaderError) -> Self {
        NotLoaded
    }
}

/// Reloads the page (a click handler).
pub fn reload_page<E>(_: E) {
    #[cfg(feature = "hydrate")]
    let _ = leptos::prelude::window().location().reload();
}
