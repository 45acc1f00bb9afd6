//! The dropzone: files dropped or chosen go to [`Dashboard::add`].

use leptos::prelude::*;

use crate::state::Dashboard;

#[component]
pub fn Dropzone() -> impl IntoView {
    let dashboard = Dashboard::from_context();
    let over = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    let take = move |files: web_sys::FileList| {
        for i in 0..files.length() {
            if let Some(file) = files.get(i) {
                dashboard.add(file);
            }
        }
    };
    view! {
        <div
            class="dropzone"
            class:over=move || over.get()
            data-testid="dropzone"
            on:dragenter=move |ev: web_sys::DragEvent| { ev.prevent_default(); over.set(true); }
            on:dragover=move |ev: web_sys::DragEvent| { ev.prevent_default(); over.set(true); }
            on:dragleave=move |_| over.set(false)
            on:drop=move |ev: web_sys::DragEvent| {
                ev.prevent_default();
                over.set(false);
                if let Some(files) = ev.data_transfer().and_then(|d| d.files()) { take(files); }
            }
        >
            <p><strong>"Drop CSV files here"</strong>" — several at once — or "
                <button on:click=move |_| { if let Some(input) = input.get() { input.click(); } }>"choose files"</button>
            </p>
            <p class="muted">"Each file is checked in your browser right away, then uploaded and validated on the server."</p>
            <input type="file" multiple accept=".csv,.tsv,.txt,text/csv" node_ref=input hidden data-testid="file-input"
                on:change=move |_| {
                    if let Some(files) = input.get().and_then(|i| i.files()) { take(files); }
                    if let Some(input) = input.get() { input.set_value(""); }
                }/>
        </div>
    }
}
