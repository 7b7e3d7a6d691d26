//! The `hwbp` command: parse the arguments, dispatch to one subcommand, choose the exit code.
//!
//! Exit codes: 0 success; 1 runtime error; 2 bad input (usage, specs, scenario files).
#![forbid(unsafe_code)]

mod args;
mod cmd;
mod exit;
mod output;
mod plan;
mod runner;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    exit::finish(cmd::run(cli))
}
