//! The upload queue: files dropped in this tab, from the pre-check until the server has them.
//! At most [`PARALLEL_UPLOADS`] send at once; the rest wait their turn.

use std::collections::HashMap;

use leptos::prelude::*;
use web_sys::File;

use crate::precheck::Precheck;
use crate::upload::Upload;

/// Uploads running side by side; the rest wait their turn.
const PARALLEL_UPLOADS: usize = 3;

/// A file dropped in this tab, until the server has it.
#[derive(Clone, Debug, PartialEq)]
pub enum Local {
    Checking,
    /// The header cannot match: upload only if the user says so.
    Confirm(Precheck),
    Waiting(Option<Precheck>),
    Uploading(Option<Precheck>),
    Done,
    Refused(String),
}

/// The row of a file dropped in this tab.
#[derive(Clone)]
pub struct LocalFile {
    pub key: u64,
    pub name: String,
    pub size: f64,
    /// The schema chosen when it was dropped (none: structure only).
    pub schema: Option<String>,
    pub status: RwSignal<Local>,
    pub sent: RwSignal<UploadProgress>,
}

/// How far an upload is, for its progress bar, speed and time left.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UploadProgress {
    /// Bytes sent so far.
    pub done: f64,
    pub total: f64,
    /// When the upload started (ms since the epoch); 0 until it does.
    pub started_ms: f64,
}

/// The `File` behind a row, kept until the server has it, and its request once sending.
struct Held {
    key: u64,
    file: File,
    upload: Option<Upload>,
}

/// The files dropped in this tab and their uploads.
#[derive(Clone, Copy)]
pub struct UploadQueue {
    /// One row per file dropped in this tab, in the order dropped.
    pub files: RwSignal<Vec<LocalFile>>,
    held: StoredValue<Vec<Held>, LocalStorage>,
    /// Files this tab uploaded, by job id, for the full check in the browser. A signal: the
    /// job's row often appears (pushed over the WebSocket) before the upload's own response
    /// names its id, and the row must then offer the check.
    pub uploaded: RwSignal<HashMap<String, File>, LocalStorage>,
    next_key: StoredValue<u64>,
}

impl Default for UploadQueue {
    fn default() -> Self {
        UploadQueue {
            files: RwSignal::new(Vec::new()),
            held: StoredValue::new_local(Vec::new()),
            uploaded: RwSignal::new_local(HashMap::new()),
            next_key: StoredValue::new(0),
        }
    }
}

impl UploadQueue {
    /// A row for a file just dropped, to be checked against the schema with this id.
    pub fn show(self, file: &File, schema: Option<String>) -> LocalFile {
        let key = self.next_key.get_value();
        self.next_key.set_value(key + 1);
        let local = LocalFile {
            key,
            name: file.name(),
            size: file.size(),
            schema,
            status: RwSignal::new(Local::Checking),
            sent: RwSignal::new(UploadProgress {
                done: 0.0,
                total: file.size(),
                started_ms: 0.0,
            }),
        };
        self.files.update(|files| files.push(local.clone()));
        local
    }

    /// Keep the file behind row `key` until it is uploaded or removed.
    pub fn hold(self, key: u64, file: File) {
        self.held.update_value(|held| {
            held.push(Held {
                key,
                file,
                upload: None,
            })
        });
    }

    /// Start waiting uploads while fewer than PARALLEL_UPLOADS run.
    pub fn pump(self) {
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
        let Some(file) = self.held.with_value(|held| {
            held.iter()
                .find(|h| h.key == local.key)
                .map(|h| h.file.clone())
        }) else {
            return;
        };
        let check = match local.status.get_untracked() {
            Local::Waiting(check) => check,
            _ => None,
        };
        local.status.set(Local::Uploading(check));
        let started_ms = now_ms();
        let sent = local.sent;
        let status = local.status;
        let key = local.key;
        let kept = file.clone();
        let upload = Upload::start(
            &file,
            local.schema.as_deref(),
            move |done, total| {
                sent.set(UploadProgress {
                    done,
                    total,
                    started_ms,
                })
            },
            move |outcome| {
                match outcome {
                    Ok(job) => {
                        self.uploaded.update(|files| {
                            files.insert(job.id, kept);
                        });
                        status.set(Local::Done);
                    }
                    Err(e) => status.set(Local::Refused(e.to_string())),
                }
                self.held.update_value(|held| held.retain(|h| h.key != key));
                self.pump();
            },
        );
        match upload {
            Ok(upload) => self.held.update_value(|held| {
                if let Some(entry) = held.iter_mut().find(|h| h.key == key) {
                    entry.upload = Some(upload);
                }
            }),
            Err(e) => status.set(Local::Refused(e.to_string())),
        }
    }

    /// Remove row `key`, stopping its upload if one is running.
    pub fn cancel(self, key: u64) {
        self.held.update_value(|held| {
            if let Some(upload) = held
                .iter()
                .find(|h| h.key == key)
                .and_then(|h| h.upload.as_ref())
            {
                upload.abort();
            }
            held.retain(|h| h.key != key);
        });
        self.files.update(|files| files.retain(|f| f.key != key));
        self.pump();
    }
}

/// Now, in ms since the epoch (the browser's clock).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
