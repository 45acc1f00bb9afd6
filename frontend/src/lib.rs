//! # datavista-frontend
//!
//! The dashboard, client-side rendered with Leptos and built with Trunk.
//!
//! ## Layout
//! - [`app`] — the components: header with the connection indicator, schema picker,
//!   dropzone, the live table of files and the errors panel.
//! - [`live`] — the WebSocket connection (reconnect, catch-up) and the job list it keeps.
//! - [`upload`] — uploads through XMLHttpRequest, for progress events.
//! - [`precheck`] — the shared validator on the first MiB of each dropped file.
//! - [`api`] — HTTP calls.

pub mod api;
pub mod app;
pub mod live;
pub mod precheck;
pub mod upload;

pub use app::App;
