//! Error → exit code, and how errors are printed.
//!
//! A [`UsageError`] anywhere in the chain means bad input: exit 2. A broken pipe exits 0.
//! Anything else is a runtime error: exit 1. Errors print as one line, `hwbp: <message>`:
//! clap's multi-line usage errors are folded into that line too, and a cause already quoted by
//! the message before it is not repeated.

use std::process::ExitCode;

/// Bad input from the user: printed as one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for returning a usage error from a subcommand.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Converts the result of a subcommand into the process exit code, printing any error.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("hwbp: {}", one_line(&err));
            let bad_input = err.chain().any(|e| {
                e.is::<UsageError>()
                    || e.downcast_ref::<hwbp::Error>()
                        .is_some_and(hwbp::Error::is_bad_input)
            });
            if bad_input {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The error chain as one line: each cause after a `: `, unless the text so far already
/// contains it (thiserror messages often quote their `#[source]`), plus what to do when the
/// cause is a permission the user lacks.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let denied = err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    });
    if denied && !line.contains("CAP_") {
        line.push_str(
            "; reading another user's process needs ptrace access: run as that user, or as \
             root (CAP_SYS_PTRACE)",
        );
    }
    line.replace('\n', " ")
}

/// Prints a clap parse error. `--help` and `--version` go to stdout with exit 0; a usage error
/// becomes one line (clap's first line, its tips, and where to read the options), exit 2.
pub fn clap_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Help that cannot be printed (closed stdout) is no error worth reporting.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("hwbp: {}", no_subcommand_message());
            return ExitCode::from(2);
        }
        _ => {}
    }
    eprintln!("hwbp: {}", clap_one_line(&err.render().to_string()));
    ExitCode::from(2)
}

/// The visible subcommands, in `hwbp --help` order (hidden ones and clap's `help` left out).
pub fn visible_subcommands() -> Vec<String> {
    use clap::CommandFactory;
    crate::args::Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect()
}

/// What `hwbp` with no subcommand says, listing every visible subcommand.
fn no_subcommand_message() -> String {
    format!(
        "no subcommand given: use one of {} (see hwbp --help)",
        visible_subcommands().join(", ")
    )
}

/// Folds clap's rendered error (`error: ...`, blank lines, `  tip: ...`, `Usage: ...`,
/// `For more information, try '--help'.`) into one line.
fn clap_one_line(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // Multi-line details (e.g. the list of missing arguments) and tips; the usage and the
    // "--help" pointer are replaced by one shorter pointer below.
    let mut usage = None;
    for extra in lines {
        if let Some(u) = extra.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if extra.starts_with("For more information") {
        } else if let Some(tip) = extra.strip_prefix("tip: ") {
            line.push_str("; ");
            line.push_str(tip);
        } else {
            line.push(' ');
            line.push_str(extra);
        }
    }
    match usage {
        Some(usage) => line.push_str(&format!("; usage: {usage} (see --help)")),
        None => line.push_str("; see hwbp --help"),
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<hwbp::Error>()
                .is_some_and(|h| h.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_into_one_line_with_the_tip_and_usage() {
        let rendered = "error: unexpected argument '-1' found\n\n  tip: to pass '-1' as a value, \
                        use '-- -1'\n\nUsage: hwbp watch [OPTIONS] <SPEC>...\n\nFor more \
                        information, try '--help'.\n";
        assert_eq!(
            clap_one_line(rendered),
            "unexpected argument '-1' found; to pass '-1' as a value, use '-- -1'; usage: \
             hwbp watch [OPTIONS] <SPEC>... (see --help)"
        );
    }

    #[test]
    fn the_no_subcommand_message_names_every_visible_subcommand() {
        use clap::CommandFactory;
        let message = no_subcommand_message();
        assert_eq!(
            message,
            "no subcommand given: use one of watch, record, stat, demo, constraints, slots, ksym, \
             report, completions, man (see hwbp --help)"
        );
        let cli = crate::args::Cli::command();
        for sub in cli.get_subcommands() {
            let listed = message.contains(&format!(" {},", sub.get_name()))
                || message.contains(&format!(" {} (", sub.get_name()));
            assert_eq!(listed, !sub.is_hide_set(), "{}", sub.get_name());
        }
    }

    #[test]
    fn a_cause_quoted_by_its_context_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = anyhow::Error::new(io)
            .context("cannot read /proc/1/maps: permission denied")
            .context("cannot read the symbols of process 1");
        assert_eq!(
            one_line(&err),
            "cannot read the symbols of process 1: cannot read /proc/1/maps: permission \
             denied; reading another user's process needs ptrace access: run as that user, or \
             as root (CAP_SYS_PTRACE)"
        );
    }
}
