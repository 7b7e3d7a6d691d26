//! What the examples share: `NAME SPEC -- CMD ARGS...` on the command line, and the exit code
//! (2 for bad input, as hwbp's own).
use std::process::ExitCode;

/// Runs `run(spec, command)` from the command line `SPEC -- CMD ARGS...`; `usage` is the
/// example's usage line.
pub fn main_with(
    usage: &str,
    run: impl FnOnce(&str, &[String]) -> Result<(), hwbp::Error>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (spec, command) = match args.split_first() {
        Some((spec, [dashes, command @ ..])) if dashes == "--" && !command.is_empty() => {
            (spec, command)
        }
        _ => {
            eprintln!("usage: {usage}");
            return ExitCode::from(2);
        }
    };
    match run(spec, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let name = usage.split(' ').next().unwrap_or(usage);
            eprintln!("{name}: {error}");
            ExitCode::from(if error.is_bad_input() { 2 } else { 1 })
        }
    }
}
