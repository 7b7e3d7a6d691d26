//! One module per subcommand, each with one `run`.

pub mod constraints;

use crate::args::{Cli, Command};

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Constraints(args) => constraints::run(args),
    }
}
