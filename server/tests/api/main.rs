//! The server's integration tests, one binary with a module per feature (zero2prod's
//! `tests/api` layout): each test starts the real `datavista` binary through
//! `datavista_testkit` and talks to it over real HTTP and WebSocket connections.
//!
//! ## Layout
//! - `uploads`, `limits`, `cancel`, `recovery`: a job's way in, its refusals, its end by the
//!   user, and across a crash.
//! - `live`, `websocket`: live status to every tab, and the socket's edges.
//! - `schemas`, `tokens`, `access`: the owner's schemas, scripts' tokens, and who may see what.
//! - `operations`, `browser_surface`: health, metrics, SIGTERM, the dashboard's files and what
//!   responses let a browser do.
//! - `bad_inputs`, `hostile_clients`, `hostile_input`: files and clients meant to hurt.
//! - `postgres`, `object_storage`, `multi_node`: the server on real PostgreSQL, S3 and Redis.
//! - `validate_command`: the `datavista validate` command.
//! - `helpers`: what several of these modules share.

mod access;
mod bad_inputs;
mod browser_surface;
mod cancel;
mod helpers;
mod hostile_clients;
mod hostile_input;
mod limits;
mod live;
mod multi_node;
mod object_storage;
mod operations;
mod postgres;
mod recovery;
mod schemas;
mod tokens;
mod uploads;
mod validate_command;
mod websocket;
