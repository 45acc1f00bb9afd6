//! The dashboard's components.

use std::cell::Cell;
use std::collections::HashMap;

use datavista_shared::protocol::{ClientMessage, Job, JobState};
use datavista_shared::Schema;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen_futures::JsFuture;
use web_sys::File;

use crate::api::{self, ErrorPage, SchemaInfo};
use crate::live::{Connection, Live};
use crate::precheck::{group, looks_like_csv, precheck, Precheck, PRECHECK_BYTES};
use crate::upload::Upload;

/// Uploads running side by side; the rest wait their turn.
const PARALLEL_UPLOADS: usize = 3;
const ERRORS_PER_PAGE: u64 = 50;

/// A file dropped in this tab, until the server has it.
#[derive(Clone, Debug, PartialEq)]
enum Local {
    Checking,
    /// The header cannot match: upload only if the user says so.
    Confirm(Precheck),
    Waiting(Option<Precheck>),
    Uploading(Option<Precheck>),
    Done,
    Refused(String),
}

#[derive(Clone)]
struct LocalFile {
    key: u64,
    name: String,
    size: f64,
    schema: Option<String>,
    status: RwSignal<Local>,
    /// Bytes sent and total, and when the upload started (ms).
    sent: RwSignal<(f64, f64, f64)>,
}

/// Everything the components share.
#[derive(Clone, Copy)]
struct Dashboard {
    live: Live,
    files: RwSignal<Vec<LocalFile>>,
    handles: StoredValue<Vec<(u64, File, Option<Upload>)>, LocalStorage>,
    /// Files this tab uploaded, by job id, for the full check in the browser. A signal: the
    /// job's row often appears (pushed over the WebSocket) before the upload's own response
    /// names its id, and the row must then offer the check.
    uploaded: RwSignal<HashMap<String, File>, LocalStorage>,
    schemas: RwSignal<Vec<SchemaInfo>>,
    schema_problem: RwSignal<Option<String>>,
    schema_id: RwSignal<Option<String>>,
    /// The chosen schema once loaded, with its id: a file dropped before it arrives, or
    /// after another was chosen, must not be checked against the wrong one.
    schema: StoredValue<Option<(String, Schema)>>,
    selected: RwSignal<Option<String>>,
    next_key: StoredValue<u64>,
}

#[component]
pub fn App() -> impl IntoView {
    let dashboard = Dashboard {
        live: Live::start(),
        files: RwSignal::new(Vec::new()),
        handles: StoredValue::new_local(Vec::new()),
        uploaded: RwSignal::new_local(HashMap::new()),
        schemas: RwSignal::new(Vec::new()),
        schema_problem: RwSignal::new(None),
        schema_id: RwSignal::new(None),
        schema: StoredValue::new(None),
        selected: RwSignal::new(None),
        next_key: StoredValue::new(0),
    };
    provide_context(dashboard);
    view! {
        <header>
            <h1>"DataVista"</h1>
            <span class="muted hide-narrow">"CSV validation against Table Schemas, live"</span>
            <ConnectionIndicator/>
        </header>
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

#[component]
fn ConnectionIndicator() -> impl IntoView {
    let live = use_context::<Dashboard>().expect("dashboard context").live;
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

#[component]
fn SchemaPicker() -> impl IntoView {
    let dashboard = use_context::<Dashboard>().expect("dashboard context");
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

impl Dashboard {
    /// Use this schema (by id; empty for none) for the next files.
    fn choose_schema(self, id: String) {
        remember_schema(&id);
        if id.is_empty() {
            self.schema_id.set(None);
            self.schema.set_value(None);
            return;
        }
        self.schema_id.set(Some(id.clone()));
        self.schema.set_value(None);
        spawn_local(async move {
            let loaded = api::schema(&id).await;
            // Chosen twice quickly, the first answer can arrive last: keep only the current one.
            if self.schema_id.get_untracked().as_ref() != Some(&id) {
                return;
            }
            match loaded {
                Ok(schema) => self.schema.set_value(Some((id, schema))),
                Err(e) => self.schema_problem.set(Some(e)),
            }
        });
    }

    /// Add a user's schema (checked here by the shared crate first, all but its patterns'
    /// syntax, which only the server can compile) and select it.
    fn add_schema(self, body: String, on_added: impl FnOnce() + 'static) {
        if let Err(e) = Schema::from_json(&body) {
            self.schema_problem
                .set(Some(format!("this schema cannot be used: {e}")));
            return;
        }
        spawn_local(async move {
            match api::add_schema(body).await {
                Ok(info) => {
                    let id = info.id.clone();
                    self.schemas.update(|list| list.push(info));
                    self.schema_problem.set(None);
                    on_added();
                    self.choose_schema(id);
                }
                Err(e) => self
                    .schema_problem
                    .set(Some(format!("this schema cannot be used: {e}"))),
            }
        });
    }
}

#[component]
fn Dropzone() -> impl IntoView {
    let dashboard = use_context::<Dashboard>().expect("dashboard context");
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

impl Dashboard {
    /// A dropped or chosen file: pre-check it, then queue it for upload.
    fn add(self, file: File) {
        let key = self.next_key.get_value();
        self.next_key.set_value(key + 1);
        let local = LocalFile {
            key,
            name: file.name(),
            size: file.size(),
            schema: self.schema_id.get_untracked(),
            status: RwSignal::new(Local::Checking),
            sent: RwSignal::new((0.0, file.size(), 0.0)),
        };
        if file.name().to_ascii_lowercase().ends_with(".json") {
            // A schema file: add it as a schema rather than validating it.
            spawn_local(async move {
                match read_text(&file).await {
                    Ok(text) => self.add_schema(text, || {}),
                    Err(e) => self.schema_problem.set(Some(e)),
                }
            });
            return;
        }
        self.files.update(|files| files.push(local.clone()));
        if !looks_like_csv(&file.name(), &file.type_()) {
            local.status.set(Local::Refused(
                "not a CSV file: DataVista validates .csv files".into(),
            ));
            return;
        }
        self.handles
            .update_value(|handles| handles.push((key, file.clone(), None)));
        let schema_id = local.schema.clone();
        let loaded = self
            .schema
            .get_value()
            .filter(|(id, _)| schema_id.as_ref() == Some(id))
            .map(|(_, schema)| schema);
        spawn_local(async move {
            let schema = match (loaded, schema_id) {
                (Some(schema), _) => schema,
                (None, None) => Schema::structural_only(),
                // Dropped while the chosen schema was still on its way.
                (None, Some(id)) => match api::schema(&id).await {
                    Ok(schema) => schema,
                    Err(e) => {
                        local.status.set(Local::Refused(format!(
                            "cannot load schema {id} to check the file against: {e}"
                        )));
                        return;
                    }
                },
            };
            let complete = file.size() <= PRECHECK_BYTES as f64;
            let head = match read_head(&file).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    local
                        .status
                        .set(Local::Refused(format!("cannot read the file: {e}")));
                    return;
                }
            };
            let check = precheck(&head, &schema, complete);
            if check.header_mismatch {
                local.status.set(Local::Confirm(check));
            } else {
                local.status.set(Local::Waiting(Some(check)));
                self.pump();
            }
        });
    }

    /// Start waiting uploads while fewer than PARALLEL_UPLOADS run.
    fn pump(self) {
        let files = self.files.get_untracked();
        let running = files
            .iter()
            .filter(|f| matches!(f.status.get_untracked(), Local::Uploading(_)))
            .count();
        for local in files
            .into_iter()
            .filter(|f| matches!(f.status.get_untracked(), Local::Waiting(_)))
            .take(PARALLEL_UPLOADS.saturating_sub(running))
        {
            self.start_upload(local);
        }
    }

    fn start_upload(self, local: LocalFile) {
        let Some(file) = self.handles.with_value(|h| {
            h.iter()
                .find(|(k, _, _)| *k == local.key)
                .map(|(_, f, _)| f.clone())
        }) else {
            return;
        };
        let check = match local.status.get_untracked() {
            Local::Waiting(check) => check,
            _ => None,
        };
        local.status.set(Local::Uploading(check));
        let started = now();
        let sent = local.sent;
        let status = local.status;
        let key = local.key;
        let kept = file.clone();
        let upload = Upload::start(
            &file,
            local.schema.as_deref(),
            move |done, total| sent.set((done, total, started)),
            move |outcome| {
                match outcome {
                    Ok(job) => {
                        self.uploaded.update(|files| {
                            files.insert(job.id, kept);
                        });
                        status.set(Local::Done);
                    }
                    Err(e) => status.set(Local::Refused(e)),
                }
                self.handles
                    .update_value(|h| h.retain(|(k, _, _)| *k != key));
                self.pump();
            },
        );
        match upload {
            Ok(upload) => self.handles.update_value(|h| {
                if let Some(entry) = h.iter_mut().find(|(k, _, _)| *k == key) {
                    entry.2 = Some(upload);
                }
            }),
            Err(e) => status.set(Local::Refused(e)),
        }
    }

    fn cancel_local(self, key: u64) {
        self.handles.update_value(|h| {
            if let Some((_, _, Some(upload))) = h.iter().find(|(k, _, _)| *k == key) {
                upload.abort();
            }
            h.retain(|(k, _, _)| *k != key);
        });
        self.files.update(|files| files.retain(|f| f.key != key));
        self.pump();
    }
}

const SCHEMA_KEY: &str = "datavista.schema";

fn local_storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The schema choice survives a reload (browser storage; nothing secret in it).
fn remember_schema(id: &str) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(SCHEMA_KEY, id);
    }
}

fn remembered_schema() -> Option<String> {
    local_storage()?
        .get_item(SCHEMA_KEY)
        .ok()
        .flatten()
        .filter(|id| !id.is_empty())
}

/// A small text file (a schema), at most 1 MiB.
async fn read_text(file: &File) -> Result<String, String> {
    if file.size() > PRECHECK_BYTES as f64 {
        return Err(format!("{} is too large for a schema", file.name()));
    }
    let bytes = read_range(file, 0.0, file.size()).await?;
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", file.name()))
}

async fn read_range(file: &File, start: f64, end: f64) -> Result<Vec<u8>, String> {
    let blob = file
        .slice_with_f64_and_f64(start, end)
        .map_err(|e| format!("{e:?}"))?;
    let buffer = JsFuture::from(blob.array_buffer())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The whole file through the shared validator in the browser, one `Blob.slice()` of 1 MiB
/// at a time: memory stays at one chunk, and the page stays responsive because every read
/// returns to the event loop. `progress(done, total)` after each chunk.
pub async fn check_in_browser(
    file: &File,
    schema: Schema,
    progress: impl Fn(f64, f64),
) -> Result<datavista_shared::Report, String> {
    let total = file.size();
    let mut validator = datavista_shared::Validator::new(
        schema,
        datavista_shared::Dialect::default(),
        datavista_shared::Limits::default(),
    );
    let mut at = 0.0;
    while at < total {
        let end = (at + PRECHECK_BYTES as f64).min(total);
        validator.feed(&read_range(file, at, end).await?);
        at = end;
        progress(at, total);
    }
    Ok(validator.finish())
}

/// The first MiB of a file, read with `Blob.slice()` (never the whole file).
pub async fn read_head(file: &File) -> Result<Vec<u8>, String> {
    read_range(file, 0.0, file.size().min(PRECHECK_BYTES as f64)).await
}

fn now() -> f64 {
    js_sys::Date::now()
}

#[component]
fn FilesTable() -> impl IntoView {
    let dashboard = use_context::<Dashboard>().expect("dashboard context");
    let pending = move || {
        dashboard
            .files
            .get()
            .into_iter()
            .filter(|f| f.status.get() != Local::Done)
            .collect::<Vec<_>>()
    };
    view! {
        <table data-testid="files">
            <thead><tr>
                <th>"File"</th><th class="hide-narrow">"Size"</th><th class="hide-narrow">"Schema"</th><th>"State"</th>
                <th>"Progress"</th><th>"Rows"</th><th>"Errors"</th><th class="hide-narrow">"Time"</th><th></th>
            </tr></thead>
            <tbody>
                <For each=pending key=|f| f.key let:local>
                    <LocalRow local/>
                </For>
                <For each=move || dashboard.live.jobs.order.get() key=|id| id.clone() let:id>
                    {dashboard.live.jobs.row(&id).map(|job| view! { <JobRow job/> })}
                </For>
            </tbody>
        </table>
        <Show when=move || dashboard.live.jobs.order.get().is_empty() && dashboard.files.get().is_empty()>
            <p class="muted">"No files yet. Drop some above."</p>
        </Show>
    }
}

#[component]
fn LocalRow(local: LocalFile) -> impl IntoView {
    let dashboard = use_context::<Dashboard>().expect("dashboard context");
    let key = local.key;
    let status = local.status;
    let sent = local.sent;
    let verdict = move || match status.get() {
        Local::Checking => ("checking…".to_owned(), false),
        Local::Confirm(c) => (c.verdict, true),
        Local::Waiting(c) | Local::Uploading(c) => {
            (c.map(|c| c.verdict).unwrap_or_default(), false)
        }
        Local::Refused(e) => (e, true),
        Local::Done => (String::new(), false),
    };
    let badge = move || match status.get() {
        Local::Checking => "checking",
        Local::Confirm(_) => "check header",
        Local::Waiting(_) => "waiting",
        Local::Uploading(_) => "uploading",
        Local::Refused(_) => "failed",
        Local::Done => "uploaded",
    };
    let progress_text = move || {
        let (done, total, started) = sent.get();
        if !matches!(status.get(), Local::Uploading(_)) || started == 0.0 {
            return String::new();
        }
        let seconds = ((now() - started) / 1000.0).max(0.001);
        let speed = done / seconds;
        let left = if speed > 0.0 {
            (total - done) / speed
        } else {
            0.0
        };
        format!(
            "{} of {} · {}/s · {:.0} s left",
            human(done),
            human(total),
            human(speed),
            left
        )
    };
    let upload_anyway = move |_| {
        if let Local::Confirm(check) = status.get_untracked() {
            status.set(Local::Waiting(Some(check)));
            dashboard.pump();
        }
    };
    view! {
        <tr class="local" data-testid="local-row">
            <td>{local.name.clone()}<div class="muted verdict" class:bad=move || verdict().1>{move || verdict().0}</div></td>
            <td class="hide-narrow">{human(local.size)}</td>
            <td class="hide-narrow">{local.schema.clone().unwrap_or_else(|| "—".into())}</td>
            <td><span class="badge" class:failed=move || matches!(status.get(), Local::Refused(_))>{badge}</span></td>
            <td>
                <progress max="1" value=move || { let (d, t, _) = sent.get(); if t > 0.0 { d / t } else { 0.0 } }></progress>
                <div class="muted">{progress_text}</div>
            </td>
            <td></td><td></td><td class="hide-narrow"></td>
            <td>
                <Show when=move || matches!(status.get(), Local::Confirm(_))>
                    <button on:click=upload_anyway>"Upload anyway"</button>
                </Show>
                <button on:click=move |_| dashboard.cancel_local(key) aria-label="Remove">"✕"</button>
            </td>
        </tr>
    }
}

#[component]
fn JobRow(job: RwSignal<Job>) -> impl IntoView {
    let dashboard = use_context::<Dashboard>().expect("dashboard context");
    let id = job.with_untracked(|j| j.id.clone());
    let state = move || job.with(|j| j.state);
    let percent = move || {
        job.with(|j| {
            j.progress
                .percent()
                .unwrap_or(if j.state.is_final() { 100.0 } else { 0.0 })
        })
    };
    let select_id = id.clone();
    let select = move || dashboard.selected.set(Some(select_id.clone()));
    let select_key = select.clone();
    let cancel_id = id.clone();
    let file_id = id.clone();
    let has_local_file = move || {
        dashboard
            .uploaded
            .with(|files| files.contains_key(&file_id))
    };
    let local_check = RwSignal::new(None::<(f64, f64, Option<String>)>);
    let file_id = id.clone();
    let check_locally = move |ev: web_sys::MouseEvent| {
        ev.stop_propagation();
        let Some(file) = dashboard
            .uploaded
            .with_untracked(|files| files.get(&file_id).cloned())
        else {
            return;
        };
        let schema_id = job.with_untracked(|j| j.schema_id.clone());
        local_check.set(Some((0.0, file.size(), None)));
        spawn_local(async move {
            let schema = match schema_id {
                None => Ok(Schema::structural_only()),
                Some(id) => api::schema(&id).await,
            };
            let mut left_to_server = String::new();
            let outcome = match schema {
                Ok(schema) => {
                    left_to_server = crate::precheck::left_to_server(&schema);
                    check_in_browser(&file, schema, |done, total| {
                        local_check.set(Some((done, total, None)))
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            let verdict = match outcome {
                Ok(report) if report.valid => format!(
                    "valid in your browser too ({} rows, {:.1} s){left_to_server}",
                    group(report.rows),
                    report.elapsed_ms / 1000.0
                ),
                Ok(report) => format!(
                    "{} errors found in your browser too ({:.1} s){left_to_server}",
                    group(report.error_total),
                    report.elapsed_ms / 1000.0
                ),
                Err(e) => format!("the browser check failed: {e}"),
            };
            let total = file.size();
            local_check.set(Some((total, total, Some(verdict))));
        });
    };
    view! {
        <tr class="job" tabindex="0" data-testid="job-row" data-state=move || state().as_str()
            on:click=move |_| select()
            on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { select_key() }
        >
            <td data-testid="file-name">{move || job.with(|j| j.file_name.clone())}</td>
            <td class="hide-narrow">{move || job.with(|j| human(j.progress.bytes_total.unwrap_or(j.progress.bytes_done) as f64))}</td>
            <td class="hide-narrow">{move || job.with(|j| j.schema_id.clone().unwrap_or_else(|| "—".into()))}</td>
            <td><span class=move || format!("badge {}", state().as_str()) data-testid="state">{move || state().as_str()}</span>
                {move || job.with(|j| j.reason.clone()).map(|r| view! { <div class="muted">{r}</div> })}</td>
            <td><progress max="100" value=percent></progress><span class="muted">{move || format!(" {:.0} %", percent())}</span></td>
            <td>{move || job.with(|j| group(j.progress.rows))}</td>
            <td data-testid="errors">{move || job.with(|j| group(j.progress.errors))}</td>
            <td class="hide-narrow muted">{move || job.with(|j| format!("{:.1} s", (j.updated_at_ms.saturating_sub(j.created_at_ms)) as f64 / 1000.0))}</td>
            <td>
                <Show when=move || has_local_file() && local_check.with(|c| c.as_ref().is_none_or(|c| c.2.is_some()))>
                    <button on:click=check_locally.clone() title="Validate the whole file here, in your browser">"Check in browser"</button>
                </Show>
                {move || local_check.get().map(|(done, total, verdict)| match verdict {
                    Some(v) => view! { <div class="muted" data-testid="browser-check">{v}</div> }.into_any(),
                    None => view! { <div><progress max="1" value={if total > 0.0 { done / total } else { 0.0 }}></progress><span class="muted">" checking in the browser"</span></div> }.into_any(),
                })}
                <Show when=move || !state().is_final()>
                    <button on:click={
                        let id = cancel_id.clone();
                        move |ev: web_sys::MouseEvent| { ev.stop_propagation(); dashboard.live.send(&ClientMessage::Cancel { job_id: id.clone() }); }
                    }>"Cancel"</button>
                </Show>
            </td>
        </tr>
    }
}

#[component]
fn ErrorsPanel() -> impl IntoView {
    let dashboard = use_context::<Dashboard>().expect("dashboard context");
    let offset = RwSignal::new(0u64);
    let page = RwSignal::new(None::<Result<ErrorPage, String>>);
    let request = Cell::new(0u32);
    let request = StoredValue::new_local(request);
    Effect::new(move |_| {
        let Some(id) = dashboard.selected.get() else {
            return;
        };
        let final_state = dashboard.live.jobs.row(&id).map(|j| j.with(|j| j.state));
        let at = offset.get();
        if !matches!(final_state, Some(JobState::Valid | JobState::Invalid)) {
            page.set(None);
            return;
        }
        let ticket = request.with_value(|r| {
            r.set(r.get() + 1);
            r.get()
        });
        spawn_local(async move {
            let result = api::errors(&id, at, ERRORS_PER_PAGE).await;
            if request.with_value(|r| r.get()) == ticket {
                page.set(Some(result));
            }
        });
    });
    let job = move || {
        dashboard
            .selected
            .get()
            .and_then(|id| dashboard.live.jobs.row(&id))
    };
    view! {
        {move || job().map(|job| {
            let j = job.get();
            let id = j.id.clone();
            view! {
                <section class="card" aria-label="Errors" data-testid="errors-panel">
                    <div class="toolbar">
                        <h2>{format!("{} — {}", j.file_name, j.state.as_str())}</h2>
                        <a class="button" href=format!("/api/uploads/{id}/report.json") download>"Report (JSON)"</a>
                        <a class="button" href=format!("/api/uploads/{id}/report.csv") download>"Report (CSV)"</a>
                        <button on:click=move |_| { dashboard.selected.set(None); offset.set(0); }>"Close"</button>
                    </div>
                    <div class="counts">
                        {j.error_counts.iter().map(|(code, n)| view! { <span class="badge invalid">{format!("{code}: {}", group(*n))}</span> }).collect_view()}
                    </div>
                    {move || match page.get() {
                        None => view! { <p class="muted">"The error list is ready once validation is done."</p> }.into_any(),
                        Some(Err(e)) => view! { <p class="error-text">{e}</p> }.into_any(),
                        Some(Ok(p)) if p.errors.is_empty() => view! { <p class="muted">"No errors."</p> }.into_any(),
                        Some(Ok(p)) => {
                            let more = p.offset + p.limit < p.sample_size;
                            view! {
                                <table data-testid="error-table">
                                    <thead><tr><th>"Row"</th><th>"Field"</th><th>"Code"</th><th>"Message"</th><th class="hide-narrow">"Value"</th></tr></thead>
                                    <tbody>
                                        {p.errors.iter().map(|e| view! {
                                            <tr>
                                                <td>{e.row.map(|r| r.to_string()).unwrap_or_default()}</td>
                                                <td>{e.field_name.clone().unwrap_or_default()}</td>
                                                <td><code>{e.code.as_str()}</code></td>
                                                <td>{e.message.clone()}</td>
                                                <td class="hide-narrow"><code>{e.cell.clone().unwrap_or_default()}</code></td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                <div class="toolbar">
                                    <button disabled=p.offset == 0 on:click=move |_| offset.update(|o| *o = o.saturating_sub(ERRORS_PER_PAGE))>"Previous"</button>
                                    <span class="muted">{format!("{}–{} of {} listed ({} in all)", p.offset + 1, (p.offset + p.limit).min(p.sample_size), p.sample_size, group(p.error_total))}</span>
                                    <button disabled=!more on:click=move |_| offset.update(|o| *o += ERRORS_PER_PAGE)>"Next"</button>
                                </div>
                            }.into_any()
                        }
                    }}
                </section>
            }
        })}
    }
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
