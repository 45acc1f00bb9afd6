//! What the dashboard keeps in the browser's localStorage: the schema chosen last (nothing
//! secret, so it survives a reload).

use leptos::prelude::window;

const SCHEMA_KEY: &str = "datavista.schema";

fn local_storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The schema choice survives a reload (browser storage; nothing secret in it).
pub fn remember_schema(id: &str) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(SCHEMA_KEY, id);
    }
}

pub fn remembered_schema() -> Option<String> {
    local_storage()?
        .get_item(SCHEMA_KEY)
        .ok()
        .flatten()
        .filter(|id| !id.is_empty())
}
