//! The dashboard's components, one file each; [`App`] lays them out and provides the
//! [`Dashboard`](crate::state::Dashboard) they share.

mod dropzone;
mod errors_panel;
mod files_table;
mod header;
mod schema_picker;

use leptos::prelude::*;

use crate::state::Dashboard;
use dropzone::Dropzone;
use errors_panel::ErrorsPanel;
use files_table::FilesTable;
use header::Header;
use schema_picker::SchemaPicker;

#[component]
pub fn App() -> impl IntoView {
    let dashboard = Dashboard::provide();
    view! {
        <Header/>
        <main>
            <section class="card" aria-label="Add files">
                <SchemaPicker/>
                <Dropzone/>
            </section>
            <section class="card" aria-label="Files">
                <FilesTable/>
            </section>
            <ErrorsPanel/>
        </main>
        <div class="sr-only" aria-live="polite">{move || dashboard.live.jobs.announcement.get()}</div>
    }
}
