//! `datavista`: the DataVista server and command line.
//!
//! ## Layout
//! Entry and wiring:
//! - [`cli`] — the command line: `serve`, `validate`, `token`.
//! - [`app`] — `serve`: wiring, recovery of interrupted jobs at start, graceful shutdown.
//! - [`cluster`] — nodes sharing a database: job leases, taking over a stopped node's jobs,
//!   idle workers taking queued jobs, cancels asked for by other nodes.
//! - [`config`] — the typed configuration (flags and environment variables).
//! - [`state`] — what every handler can reach.
//!
//! HTTP (the only modules that know it):
//! - [`routes`] — HTTP and WebSocket endpoints, one module per resource; they parse the
//!   request and call the domain. `routes::auth` finds the request's owner (401 without).
//! - [`identity`] — anonymous session cookies, the session key and bearer tokens.
//! - [`errors`] — `ApiError`, and the one place domain errors become status codes.
//! - [`security_headers`] — the Content-Security-Policy and other headers on every response.
//! - [`session_rate`] — new sessions per client address per minute.
//!
//! The domain:
//! - [`uploads`] — receiving a file: it streams to storage under the server's bounds.
//! - [`jobs`] — the job runner: the shared validator follows each upload on a bounded
//!   worker pool; its publisher, job control, turn scheduler, upload slots, recovery, cancel.
//! - [`reports`] — reports kept in memory once read, and their CSV form.
//! - [`schemas`] — built-in, `--schema-dir` and user-added Table Schemas, and a job's rules.
//! - [`hub`] — the push hub: the registry of every WebSocket queue, behind an event-bus trait.
//! - [`store`] — the job store trait, on SQLite or PostgreSQL.
//! - [`storage`] — where files and reports live: a local directory, or an S3-compatible
//!   object store, behind a trait.
//! - [`validator_threads`] — idle-priority threads for the long part of validations.
//! - [`side_runtime`] — a small runtime for blocking callers of async clients.
//! - [`metrics`] — Prometheus metrics at `/metrics`, and the job counts behind `/healthz`.
//!
//! Leaves that everything may use:
//! - [`owner`] — `OwnerId`, whose uploads, jobs and sockets they are.
//! - [`clock`] — `now_ms`, the stamp on jobs, leases and tokens.
//! - [`sync`] — `lock`, a mutex lock that outlives a panic.
//!
//! Commands besides `serve`:
//! - [`validate_command`] — `validate`: the engine from a terminal.
//! - [`token_command`] — `token create|list|revoke`: bearer tokens, in the server's store.

mod app;
mod cli;
mod clock;
mod cluster;
mod config;
mod errors;
mod hub;
mod identity;
mod jobs;
mod metrics;
mod owner;
mod reports;
mod routes;
mod schemas;
mod security_headers;
mod session_rate;
mod side_runtime;
mod state;
mod storage;
mod store;
mod sync;
mod token_command;
mod uploads;
mod validate_command;
mod validator_threads;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate_command::run(&args),
        Command::Serve(config) => {
            // redis's TLS asks rustls for the process's provider; naming it here keeps
            // `rediss://` working even if another crate ever enables a second one. An error
            // only says one is installed already.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            let result = actix_web::rt::System::new().block_on(app::serve(*config));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("datavista: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token(command) => token_command::run(command),
    }
}
