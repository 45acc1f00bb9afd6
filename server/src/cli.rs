//! The command line: `serve`, `validate` and `token`.

use clap::{Parser, Subcommand};

use crate::{config, token_command, validate_command};

#[derive(Parser)]
#[command(
    name = "datavista",
    version,
    about = "Validate large CSV files against Frictionless Table Schemas"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server: dashboard, HTTP API and live WebSocket updates.
    Serve(Box<config::Config>),
    /// Validate CSV files. Exit code: 0 all valid, 1 some invalid, 2 could not run.
    Validate(validate_command::ValidateArgs),
    /// Manage API tokens for scripts.
    #[command(subcommand)]
    Token(token_command::TokenCommand),
}
