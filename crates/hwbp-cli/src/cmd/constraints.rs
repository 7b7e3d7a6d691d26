//! `hwbp constraints`: the scenario runner over the core constraint engine.
//!
//! Reads a scenario (FILE, or stdin when FILE is absent or `-`), runs each command through
//! [`hwbp_core::constraint::scenario::Scenario`] and prints one line per command, in order:
//! `NAME ok`, `NAME released`, `NAME ENOSPC: <explanation>` or `NAME EINVAL: <reason>`.
//! An unparsable line stops the run with `hwbp: line N: <what is wrong>; expected e.g. '...'`
//! and exit code 2; the lines before it have been printed. The rules are the kernel's
//! (`kernel/events/hw_breakpoint.c`); see the `hwbp_core::constraint` docs for both policies.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use hwbp_core::constraint::scenario::Scenario;
use hwbp_core::constraint::{EngineConfig, Policy, SlotPools};

use crate::exit::usage;

/// The most CPUs a scenario may model (the kernel's largest `NR_CPUS`).
const MAX_CPUS: u32 = 8192;

/// Which constraint rules to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    /// Today's kernel: flexible breakpoints count as pinned.
    Mainline,
    /// The 2009 design: flexible breakpoints share a rotating slot that pinned ones leave free.
    Seed,
}

/// Arguments of `hwbp constraints`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Scenario lines:\n  \
    bp NAME cpu=<N|all> [task=TASK] [type=data|inst] [weight=W] [flexible]\n  \
    del NAME\n  \
    modify NAME type=data|inst\n\
    '#' starts a comment. Output: one line per command, 'NAME ok', 'NAME released',\n\
    'NAME ENOSPC: <why>' or 'NAME EINVAL: <why>'. An unparsable line exits 2.")]
pub struct ConstraintsArgs {
    /// Debug-register slots per CPU, shared by instruction and data breakpoints (x86: 4).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub slots: u32,
    /// Separate pools (arm64 style): instruction breakpoint slots per CPU (BRPs).
    #[arg(
        long,
        value_name = "N",
        requires = "data_slots",
        conflicts_with = "slots"
    )]
    pub inst_slots: Option<u32>,
    /// Separate pools (arm64 style): data watchpoint slots per CPU (WRPs).
    #[arg(
        long,
        value_name = "N",
        requires = "inst_slots",
        conflicts_with = "slots"
    )]
    pub data_slots: Option<u32>,
    /// Number of CPUs, numbered 0 to N-1.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub cpus: u32,
    /// Constraint rules: today's kernel, or the 2009 seed design with flexible breakpoints.
    #[arg(long, value_enum, default_value_t = PolicyArg::Mainline)]
    pub policy: PolicyArg,
    /// Scenario file; stdin when absent or `-`.
    pub file: Option<PathBuf>,
}

impl ConstraintsArgs {
    fn engine_config(&self) -> anyhow::Result<EngineConfig> {
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(usage(format!(
                "--cpus {} is out of range: give 1 to {MAX_CPUS}",
                self.cpus
            )));
        }
        let pools = match (self.inst_slots, self.data_slots) {
            (Some(inst), Some(data)) => SlotPools::Separate { inst, data },
            _ => SlotPools::Shared(self.slots),
        };
        Ok(EngineConfig {
            pools,
            cpus: self.cpus,
            policy: match self.policy {
                PolicyArg::Mainline => Policy::Mainline,
                PolicyArg::Seed => Policy::Seed,
            },
        })
    }

    fn read_input(&self) -> anyhow::Result<Vec<u8>> {
        let mut input = Vec::new();
        match self.file.as_deref() {
            None => std::io::stdin()
                .lock()
                .read_to_end(&mut input)
                .context("cannot read the scenario from stdin")
                .map(|_| ()),
            Some(path) if path.as_os_str() == "-" => std::io::stdin()
                .lock()
                .read_to_end(&mut input)
                .context("cannot read the scenario from stdin")
                .map(|_| ()),
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => {
                    input = bytes;
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(usage(format!(
                    "scenario file {} does not exist: check the path, or give - to read stdin",
                    path.display()
                ))),
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("cannot read scenario file {}", path.display()))),
            },
        }?;
        Ok(input)
    }
}

/// Runs a scenario.
pub fn run(args: ConstraintsArgs) -> anyhow::Result<()> {
    let config = args.engine_config()?;
    let input = args.read_input()?;
    // Every line is checked before the first runs: a bad scenario prints nothing but its error.
    let mut lines = Vec::new();
    for (index, raw) in input.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(usage(format!(
                "line {number}: not valid UTF-8; expected e.g. 'bp NAME cpu=0 ...'"
            )));
        };
        hwbp_core::constraint::scenario::parse_line(line)
            .map_err(|parse_error| usage(format!("line {number}: {parse_error}")))?;
        lines.push(line);
    }
    let mut scenario = Scenario::new(config);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    for line in lines {
        if let Some((name, outcome)) = scenario
            .run_line(line)
            .map_err(|parse_error| usage(parse_error.to_string()))?
        {
            writeln!(out, "{}", scenario.report(name, &outcome))?;
        }
    }
    out.flush()?;
    Ok(())
}
