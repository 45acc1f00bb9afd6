//! # datavista-frontend
//!
//! The dashboard, client-side rendered with Leptos and built with Trunk.
//!
//! ## Layout
//! - [`components`] — the view, one file per component: the header with the connection
//!   indicator, the schema picker, the dropzone, the live table of files and the errors
//!   panel; [`App`] lays them out.
//! - [`state`] — the [`Dashboard`](state::Dashboard) context the components share: the
//!   schemas, the chosen one, the selected job, and what a dropped file goes through.
//! - [`queue`] — the upload queue: this tab's files from the pre-check until the server has
//!   them, a few uploads at a time.
//! - [`upload`] — one upload through XMLHttpRequest, for progress events.
//! - [`files`] — reading dropped files with `Blob.slice()`: the first MiB, a schema file,
//!   and the whole-file check in the browser.
//! - [`precheck`] — the shared validator on the first MiB of each dropped file.
//! - [`live`] — the WebSocket connection (reconnect, catch-up) and the jobs it keeps
//!   current ([`LiveJobs`](live::LiveJobs)).
//! - [`api`] — HTTP calls.
//! - [`error`] — [`ClientError`](error::ClientError), what can go wrong, in the words the
//!   user reads.
//! - [`storage`] — what survives a reload in localStorage (the chosen schema).
//! - [`format`] — sizes, counts and plurals as people read them.

pub mod api;
pub mod components;
pub mod error;
pub mod files;
pub mod format;
pub mod live;
pub mod precheck;
pub mod queue;
pub mod state;
pub mod storage;
pub mod upload;

pub use components::App;
