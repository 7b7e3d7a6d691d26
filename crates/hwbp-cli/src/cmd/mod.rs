//! One module per subcommand, each with one `run`.

pub mod completions;
pub mod constraints;
pub mod demo;
pub mod ksym;
pub mod man;
pub mod record;
pub mod report;
pub mod slots;
pub mod stat;
pub mod watch;

use crate::args::{Cli, Command};

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Watch(args) => watch::run(args),
        Command::Record(args) => record::run(args),
        Command::Stat(args) => stat::run(args),
        Command::Demo(args) => demo::run(args),
        Command::DemoTarget => demo::run_target(),
        Command::Constraints(args) => constraints::run(args),
        Command::Slots(args) => slots::run(args),
        Command::Ksym(args) => ksym::run(args),
        Command::Report(args) => report::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}
