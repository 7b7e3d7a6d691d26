//! Command-line arguments as the user typed them (clap derive). Validation into a plan happens
//! in each subcommand.

use clap::{Parser, Subcommand};

/// hwbp: hardware breakpoints and watchpoints for Linux.
#[derive(Debug, Parser)]
#[command(name = "hwbp", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the slot-constraint engine on a scenario file (or stdin), one command per line.
    Constraints(crate::cmd::constraints::ConstraintsArgs),
}
