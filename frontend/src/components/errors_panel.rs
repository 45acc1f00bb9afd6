//! The errors panel: the selected job's error counts, its errors a page at a time, and its
//! reports to download.

use std::cell::Cell;
use std::sync::Arc;

use datavista_shared::http::ErrorPage;
use datavista_shared::protocol::JobState;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::error::ClientError;
use crate::format::group;
use crate::state::Dashboard;

/// Errors listed per page of the panel.
const ERRORS_PER_PAGE: u64 = 50;

#[component]
pub fn ErrorsPanel() -> impl IntoView {
    let dashboard = Dashboard::from_context();
    let offset = RwSignal::new(0u64);
    // In an Arc: reading a signal clones its value, and an error (its cause) is not Clone.
    let page = RwSignal::new(None::<Result<ErrorPage, Arc<ClientError>>>);
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
                page.set(Some(result.map_err(Arc::new)));
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
                        Some(Err(e)) => view! { <p class="error-text">{e.to_string()}</p> }.into_any(),
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
