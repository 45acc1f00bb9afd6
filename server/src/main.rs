//! `datavista`: the DataVista server and command line.
//!
//! # Layout
//! - [`app`] — `serve`: wiring, recovery of interrupted jobs, graceful shutdown.
//! - [`config`] — the typed configuration (flags and environment variables).
//! - [`routes`] — HTTP and WebSocket endpoints, one module per resource.
//! - [`jobs`] — uploads streaming to storage while the shared validator follows them, the
//!   bounded worker pool, cancel, recovery; [`jobs::Publisher`] stores then pushes changes.
//! - [`hub`] — the push hub: the registry of every WebSocket queue, behind an event-bus trait.
//! - [`store`] — the job store trait, on SQLite or PostgreSQL.
//! - [`storage`] — where files and reports live: a local directory, or an S3-compatible
//!   object store, behind a trait.
//! - [`side_runtime`] — a small runtime for blocking callers of async clients.
//! - [`identity`] — anonymous session cookies and bearer tokens: every request has an owner.
//! - [`reports`] — reports kept in memory once read, for paging and downloads.
//! - [`security_headers`] — the Content-Security-Policy and other headers on every response.
//! - [`schemas`] — built-in, `--schema-dir` and user-added Table Schemas.
//! - [`session_rate`] — new sessions per client address per minute.
//! - [`validate_command`] — `validate`: the engine from a terminal.
//! - [`token_command`] — `token create|list|revoke`: bearer tokens, in the server's store.

mod app;
mod clock;
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

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "datavista",
    version,
    about = "Validate large CSV files against Frictionless Table Schemas"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: dashboard, HTTP API and live WebSocket updates.
    Serve(Box<config::Config>),
    /// Validate CSV files. Exit code: 0 all valid, 1 some invalid, 2 could not run.
    Validate(validate_command::ValidateArgs),
    /// Manage API tokens for scripts.
    #[command(subcommand)]
    Token(token_command::TokenCommand),
}

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
