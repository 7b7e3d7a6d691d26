//! `hwbp constraints`: the scenario runner over the core constraint engine.
//!
//! Reads a scenario (FILE, or stdin when FILE is absent or `-`), runs each command through
//! [`hwbp_core::constraint::scenario::Scenario`] and prints one line per command, in order:
//! `NAME ok`, `NAME released`, `NAME ENOSPC: <explanation>` or `NAME EINVAL: <reason>`.
//! An unparsable line stops the run with `hwbp: line N: <what is wrong>; expected e.g. '...'`
//! and exit code 2; the lines before it have been printed. The rules are the kernel's
//! (`kernel/events/hw_breakpoint.c`); see the `hwbp_core::constraint` docs for both policies.

use std::io::{BufWriter, Read, Write};

use anyhow::Context;

use crate::args::{ConstraintsArgs, PolicyArg};
use hwbp_core::constraint::scenario::Scenario;
use hwbp_core::constraint::{EngineConfig, Policy, SlotPools};

use crate::exit::usage;

/// The most CPUs a scenario may model (the kernel's largest `NR_CPUS`).
const MAX_CPUS: u32 = 8192;

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
