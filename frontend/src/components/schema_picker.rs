//! The schema picker: choose the schema the next files are checked against, or add one.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::state::Dashboard;
use crate::storage::remembered_schema;

#[component]
pub fn SchemaPicker() -> impl IntoView {
    let dashboard = Dashboard::from_context();
    let schemas = dashboard.schemas;
    let problem = dashboard.schema_problem;
    let adding = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    spawn_local(async move {
        match api::schemas().await {
            Ok(list) => {
                // The schema chosen last time, if it still exists.
                let remembered = remembered_schema().filter(|id| list.iter().any(|s| &s.id == id));
                schemas.set(list);
                if let Some(id) = remembered {
                    dashboard.choose_schema(id);
                }
            }
            Err(e) => problem.set(Some(format!("could not load schemas: {e}"))),
        }
    });
    let add = move |_| {
        dashboard.add_schema(draft.get_untracked(), move || {
            adding.set(false);
            draft.set(String::new());
        });
    };
    view! {
        <div class="toolbar">
            <label for="schema">"Schema for the next files"</label>
            <select id="schema" data-testid="schema" on:change=move |ev| dashboard.choose_schema(event_target_value(&ev))>
                <option value="" selected=move || dashboard.schema_id.get().is_none()>"none (structure only)"</option>
                <For each=move || schemas.get() key=|s| s.id.clone() let:schema>
                    <option value=schema.id.clone() selected={let id = schema.id.clone(); move || dashboard.schema_id.get().as_deref() == Some(id.as_str())}>
                        {format!("{} ({} fields)", schema.name, schema.fields.len())}
                    </option>
                </For>
            </select>
            <button on:click=move |_| adding.update(|a| *a = !*a)>"Add a schema…"</button>
        </div>
        <Show when=move || adding.get()>
            <p class="muted">"Paste Table Schema JSON, or drop a .json schema file on the box below. It is checked here first, with the same rules as the server."</p>
            <textarea aria-label="Table Schema JSON" prop:value=move || draft.get() on:input=move |ev| draft.set(event_target_value(&ev))></textarea>
            <button class="primary" on:click=add>"Add schema"</button>
        </Show>
        {move || problem.get().map(|p| view! { <p class="error-text" role="alert">{p}</p> })}
    }
}
