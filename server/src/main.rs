//! `datavista`: the DataVista binary. Subcommands:
//! - `validate` — check CSV files from a terminal with the same engine the server runs.

mod validate_command;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "datavista", version, about = "Validate large CSV files against Frictionless Table Schemas")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate CSV files. Exit code: 0 all valid, 1 some invalid, 2 could not run.
    Validate(validate_command::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate_command::run(&args),
    }
}
