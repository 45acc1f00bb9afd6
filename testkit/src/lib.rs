//! The test kit: one place that starts DataVista and talks to it, for the server's integration
//! tests (`server/tests`), the dashboard's end-to-end test (`tests/`) and the load generator
//! (`loadgen/`). It does not depend on the server crate: it runs the built binary, found by
//! [`spawn::binary`] (`DATAVISTA_BIN`, or the one cargo built next to the test), as a user
//! would, and speaks to it in the types of `datavista_shared` (`http`, `protocol`).
//!
//! A test starts with zero2prod's `spawn_app()` idea:
//!
//! ```no_run
//! # async fn demo() {
//! use datavista_testkit::{created_id, people_csv, TestServer};
//! let server = TestServer::start(&["--workers", "1"]);
//! let client = server.session().await;
//! let id = created_id(client.upload(None, &[("people.csv", people_csv(10, 0))]).await).await;
//! let job = client.wait_final(&id).await;
//! # }
//! ```
//!
//! ## Layout
//! - [`spawn`]: launching `datavista serve` ([`Launch`]) and waiting for its address; the
//!   binary's path; `/proc` readings of a running server. The only place that starts one.
//! - [`server`]: [`TestServer`], the spawned server on a temp data dir, killed on drop.
//! - [`client`]: [`Client`], one owner's HTTP client (cookie or token), uploads and typed bodies.
//! - [`socket`]: [`Socket`], a tab's WebSocket with sequence-number checks; [`LiveView`], the
//!   snapshot-and-updates bookkeeping a tab keeps.
//! - [`tokens`]: the `datavista token` commands.
//! - [`data`]: CSV files to upload.
//! - [`postgres`], [`redis`], [`s3`]: real PostgreSQL, Redis and S3-compatible servers on
//!   loopback, for the multi-node tests and the server's own store, bus and storage tests.

pub mod client;
pub mod data;
pub mod postgres;
pub mod redis;
pub mod s3;
pub mod server;
pub mod socket;
pub mod spawn;
pub mod tokens;

use std::time::Duration;

pub use client::{created_id, created_ids, error_body, upload_form, Auth, Client};
pub use data::people_csv;
pub use server::{begin_unfinished_upload, TestServer};
pub use socket::{LiveView, Socket};
pub use spawn::Launch;
pub use tokens::{create_token, create_token_with, revoke_token, token_command};

/// Every wait in these tests gives up after this long.
pub const PATIENCE: Duration = Duration::from_secs(60);
