//! The table of files: this tab's files on their way up, then every job the server reports
//! live, each with its progress and, for files uploaded from here, the whole-file check in
//! the browser.

use datavista_shared::protocol::{ClientMessage, Job};
use datavista_shared::Schema;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::files::check_in_browser;
use crate::format::{fraction, group, human_size};
use crate::queue::{now_ms, Local, LocalFile, UploadProgress};
use crate::state::Dashboard;

/// The line under a local file's name, and whether it is bad news (shown in red).
#[derive(Clone)]
struct Verdict {
    text: String,
    bad: bool,
}

impl Verdict {
    fn fine(text: String) -> Verdict {
        Verdict { text, bad: false }
    }

    fn bad(text: String) -> Verdict {
        Verdict { text, bad: true }
    }
}

/// The whole-file check in the browser of a file this tab uploaded: how far it is, then what
/// it found.
#[derive(Clone, Debug, PartialEq)]
struct BrowserCheck {
    done: f64,
    total: f64,
    /// What the user reads once the check is over (none while it runs).
    verdict: Option<String>,
}

impl BrowserCheck {
    fn started(total: f64) -> BrowserCheck {
        BrowserCheck {
            done: 0.0,
            total,
            verdict: None,
        }
    }
}

#[component]
pub fn FilesTable() -> impl IntoView {
    let dashboard = Dashboard::from_context();
    let pending = move || {
        dashboard
            .queue
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
        <Show when=move || dashboard.live.jobs.order.get().is_empty() && dashboard.queue.files.get().is_empty()>
            <p class="muted">"No files yet. Drop some above."</p>
        </Show>
    }
}

#[component]
fn LocalRow(local: LocalFile) -> impl IntoView {
    let dashboard = Dashboard::from_context();
    let key = local.key;
    let status = local.status;
    let sent = local.sent;
    let verdict = move || match status.get() {
        Local::Checking => Verdict::fine("checking…".to_owned()),
        Local::Confirm(c) => Verdict::bad(c.verdict),
        Local::Waiting(c) | Local::Uploading(c) => {
            Verdict::fine(c.map(|c| c.verdict).unwrap_or_default())
        }
        Local::Refused(e) => Verdict::bad(e),
        Local::Done => Verdict::fine(String::new()),
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
        let UploadProgress {
            done,
            total,
            started_ms,
        } = sent.get();
        if !matches!(status.get(), Local::Uploading(_)) || started_ms == 0.0 {
            return String::new();
        }
        let seconds = ((now_ms() - started_ms) / 1000.0).max(0.001);
        let speed = done / seconds;
        let left = if speed > 0.0 {
            (total - done) / speed
        } else {
            0.0
        };
        format!(
            "{} of {} · {}/s · {:.0} s left",
            human_size(done),
            human_size(total),
            human_size(speed),
            left
        )
    };
    let upload_anyway = move |_| {
        if let Local::Confirm(check) = status.get_untracked() {
            status.set(Local::Waiting(Some(check)));
            dashboard.queue.pump();
        }
    };
    view! {
        <tr class="local" data-testid="local-row">
            <td>{local.name.clone()}<div class="muted verdict" class:bad=move || verdict().bad>{move || verdict().text}</div></td>
            <td class="hide-narrow">{human_size(local.size)}</td>
            <td class="hide-narrow">{local.schema.clone().unwrap_or_else(|| "—".into())}</td>
            <td><span class="badge" class:failed=move || matches!(status.get(), Local::Refused(_))>{badge}</span></td>
            <td>
                <progress max="1" value=move || sent.with(|p| fraction(p.done, p.total))></progress>
                <div class="muted">{progress_text}</div>
            </td>
            <td></td><td></td><td class="hide-narrow"></td>
            <td>
                <Show when=move || matches!(status.get(), Local::Confirm(_))>
                    <button on:click=upload_anyway>"Upload anyway"</button>
                </Show>
                <button on:click=move |_| dashboard.queue.cancel(key) aria-label="Remove">"✕"</button>
            </td>
        </tr>
    }
}

#[component]
fn JobRow(job: RwSignal<Job>) -> impl IntoView {
    let dashboard = Dashboard::from_context();
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
            .queue
            .uploaded
            .with(|files| files.contains_key(&file_id))
    };
    let local_check = RwSignal::new(None::<BrowserCheck>);
    let file_id = id.clone();
    let check_locally = move |ev: web_sys::MouseEvent| {
        ev.stop_propagation();
        let Some(file) = dashboard
            .queue
            .uploaded
            .with_untracked(|files| files.get(&file_id).cloned())
        else {
            return;
        };
        let schema_id = job.with_untracked(|j| j.schema_id.clone());
        local_check.set(Some(BrowserCheck::started(file.size())));
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
                        local_check.set(Some(BrowserCheck {
                            done,
                            total,
                            verdict: None,
                        }))
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
            local_check.set(Some(BrowserCheck {
                done: total,
                total,
                verdict: Some(verdict),
            }));
        });
    };
    view! {
        <tr class="job" tabindex="0" data-testid="job-row" data-state=move || state().as_str()
            on:click=move |_| select()
            on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { select_key() }
        >
            <td data-testid="file-name">{move || job.with(|j| j.file_name.clone())}</td>
            <td class="hide-narrow">{move || job.with(|j| human_size(j.progress.bytes_total.unwrap_or(j.progress.bytes_done) as f64))}</td>
            <td class="hide-narrow">{move || job.with(|j| j.schema_id.clone().unwrap_or_else(|| "—".into()))}</td>
            <td><span class=move || format!("badge {}", state().as_str()) data-testid="state">{move || state().as_str()}</span>
                {move || job.with(|j| j.reason.clone()).map(|r| view! { <div class="muted">{r}</div> })}</td>
            <td><progress max="100" value=percent></progress><span class="muted">{move || format!(" {:.0} %", percent())}</span></td>
            <td>{move || job.with(|j| group(j.progress.rows))}</td>
            <td data-testid="errors">{move || job.with(|j| group(j.progress.errors))}</td>
            <td class="hide-narrow muted">{move || job.with(|j| format!("{:.1} s", (j.updated_at_ms.saturating_sub(j.created_at_ms)) as f64 / 1000.0))}</td>
            <td>
                <Show when=move || has_local_file() && local_check.with(|c| c.as_ref().is_none_or(|c| c.verdict.is_some()))>
                    <button on:click=check_locally.clone() title="Validate the whole file here, in your browser">"Check in browser"</button>
                </Show>
                {move || local_check.get().map(|check| match check.verdict {
                    Some(v) => view! { <div class="muted" data-testid="browser-check">{v}</div> }.into_any(),
                    None => view! { <div><progress max="1" value=fraction(check.done, check.total)></progress><span class="muted">" checking in the browser"</span></div> }.into_any(),
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
