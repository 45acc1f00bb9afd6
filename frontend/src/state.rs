//! The [`Dashboard`]: everything the components share, provided once as a Leptos context,
//! and what a user does with schemas and dropped files.

use datavista_shared::http::SchemaInfo;
use datavista_shared::Schema;
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::File;

use crate::api;
use crate::files::{read_head, read_text};
use crate::live::Live;
use crate::precheck::{looks_like_csv, precheck, PRECHECK_BYTES};
use crate::queue::{Local, UploadQueue};
use crate::storage::remember_schema;

/// Everything the components share.
#[derive(Clone, Copy)]
pub struct Dashboard {
    pub live: Live,
    pub queue: UploadQueue,
    pub schemas: RwSignal<Vec<SchemaInfo>>,
    pub schema_problem: RwSignal<Option<String>>,
    pub schema_id: RwSignal<Option<String>>,
    /// The chosen schema once loaded, with its id: a file dropped before it arrives, or
    /// after another was chosen, must not be checked against the wrong one.
    schema: StoredValue<Option<LoadedSchema>>,
    /// The job whose errors the panel shows.
    pub selected: RwSignal<Option<String>>,
}

/// A schema fetched from the server, and the id it was fetched by.
#[derive(Clone)]
struct LoadedSchema {
    id: String,
    schema: Schema,
}

impl Dashboard {
    /// Connect to the server and make the context the components read with
    /// [`Dashboard::from_context`].
    pub fn provide() -> Dashboard {
        let dashboard = Dashboard {
            live: Live::start(),
            queue: UploadQueue::default(),
            schemas: RwSignal::new(Vec::new()),
            schema_problem: RwSignal::new(None),
            schema_id: RwSignal::new(None),
            schema: StoredValue::new(None),
            selected: RwSignal::new(None),
        };
        provide_context(dashboard);
        dashboard
    }

    /// The dashboard [`App`](crate::App) provided; every component is rendered inside it.
    pub fn from_context() -> Dashboard {
        expect_context::<Dashboard>()
    }

    /// Use this schema (by id; empty for none) for the next files.
    pub fn choose_schema(self, id: String) {
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
                Ok(schema) => self.schema.set_value(Some(LoadedSchema { id, schema })),
                Err(e) => self.schema_problem.set(Some(e.to_string())),
            }
        });
    }

    /// Add a user's schema (checked here by the shared crate first, all but its patterns'
    /// syntax, which only the server can compile) and select it.
    pub fn add_schema(self, body: String, on_added: impl FnOnce() + 'static) {
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

    /// A dropped or chosen file: pre-check it, then queue it for upload.
    pub fn add(self, file: File) {
        if file.name().to_ascii_lowercase().ends_with(".json") {
            // A schema file: add it as a schema rather than validating it.
            spawn_local(async move {
                match read_text(&file).await {
                    Ok(text) => self.add_schema(text, || {}),
                    Err(e) => self.schema_problem.set(Some(e.to_string())),
                }
            });
            return;
        }
        let local = self.queue.show(&file, self.schema_id.get_untracked());
        if !looks_like_csv(&file.name(), &file.type_()) {
            local.status.set(Local::Refused(
                "not a CSV file: DataVista validates .csv files".into(),
            ));
            return;
        }
        self.queue.hold(local.key, file.clone());
        let schema_id = local.schema.clone();
        let loaded = self
            .schema
            .get_value()
            .filter(|loaded| schema_id.as_ref() == Some(&loaded.id))
            .map(|loaded| loaded.schema);
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
                self.queue.pump();
            }
        });
    }
}
