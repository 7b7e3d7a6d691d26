//! The `hwbp` command: parse the arguments, dispatch to one subcommand, choose the exit code.
//!
//! Exit codes: 0 success; 1 runtime error; 2 bad input (usage, specs, scenario files). Every
//! error, clap's included, is one stderr line `hwbp: <what is wrong>: <what would work>`.
#![forbid(unsafe_code)]

mod args;
mod cmd;
mod exit;
mod output;
mod plan;

use clap::Parser;

fn main() -> std::process::ExitCode {
    match args::Cli::try_parse() {
        Ok(cli) => exit::finish(cmd::run(cli)),
        Err(err) => exit::clap_error(&err),
    }
}
