//! The page header: the product's name and whether the live connection is up.

use leptos::prelude::*;

use crate::live::Connection;
use crate::state::Dashboard;

#[component]
pub fn Header() -> impl IntoView {
    view! {
        <header>
            <h1>"DataVista"</h1>
            <span class="muted hide-narrow">"CSV validation against Table Schemas, live"</span>
            <ConnectionIndicator/>
        </header>
    }
}

#[component]
fn ConnectionIndicator() -> impl IntoView {
    let live = Dashboard::from_context().live;
    let text = move || match live.connection.get() {
        Connection::Connecting => "connecting…".to_owned(),
        Connection::Live => "live".to_owned(),
        Connection::Reconnecting(s) => format!("offline — retrying in {s} s"),
    };
    view! {
        <span class="connection" class:live=move || live.connection.get() == Connection::Live role="status" data-testid="connection">
            <span class="dot"></span>{text}
        </span>
    }
}
