//! # datavista-shared
//!
//! The code the DataVista server and the dashboard (compiled to WebAssembly) both run, so the
//! browser's pre-check and the server give the same verdict on the same bytes, and both ends
//! speak one protocol. It does no I/O: callers push bytes in and get values out.
//!
//! ## Layout
//! - [`schema`] — the Frictionless Table Schema model: fields, types, formats, constraints,
//!   keys; loaded from JSON, with every unsupported feature refused at load time.
//!   [`schema::types`] turns a cell's text into a typed value: the [`schema::types::FieldType`]
//!   dispatch in its `mod.rs`, then one module per family (`numbers.rs`, `temporal.rs`,
//!   `text.rs`).
//! - [`dialect`] — Table Dialect: delimiter, quoting, header rows, comments.
//! - [`validator`] — the streaming [`Validator`] (`feed` chunks, then `finish`), on top of
//!   [`validator::records`], the push-based record reader built on `csv-core` (the record it
//!   hands out is in `records/record.rs`). The checker's parts have a file each:
//!   `validator/header.rs` (labels, and the column each field is read from),
//!   `validator/cells.rs` (each cell meets a fast check made once for its field first, in
//!   `validator/fast.rs`, and the general checks only when that check is not sure; cell
//!   errors) and `validator/keys.rs` (primary key, unique keys and unique fields, over the
//!   hashed sets of `validator/unique.rs`).
//! - [`report`] — error codes (Frictionless names), errors, the [`Report`] and the [`Limits`].
//! - [`protocol`] — WebSocket messages and job states.
//! - [`follow`] — a client's bookkeeping of those messages: snapshot parts, sequence order,
//!   resuming after a gap (the dashboard's and the tests' tabs).
//! - [`format`] — sizes and counts as people read them ("1.2 MB", "5,000 errors").
//! - [`http`] — the HTTP API's bodies, one type each for the server, dashboard and tests.
//!
//! ## Row numbers
//! As in Frictionless, rows count CSV records from 1 and the header is row 1, so the first
//! data row is row 2. Blank lines and comment lines are skipped and are not rows; lines count
//! physical lines, so a quoted cell with a newline makes them differ.

mod clock;
pub mod dialect;
pub mod follow;
pub mod format;
pub mod http;
pub mod protocol;
pub mod report;
pub mod schema;
pub mod validator;

pub use dialect::Dialect;
pub use report::{ErrorCode, Limits, Report, ValidationError};
pub use schema::{Schema, SchemaError};
pub use validator::{Progress, Validator};
