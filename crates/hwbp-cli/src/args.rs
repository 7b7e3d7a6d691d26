//! Command-line arguments as the user typed them (clap derive). Each subcommand turns these
//! into a validated plan before it touches the kernel.

use clap::{Args, Parser, Subcommand};

/// hwbp: hardware breakpoints and watchpoints for Linux.
///
/// Exit codes: 0 success, 1 runtime error, 2 bad input.
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
    /// Watch memory and print every access live, with who made it.
    Watch(WatchArgs),
    /// Count accesses exactly, per watchpoint, per thread and per accessing function.
    Stat(StatArgs),
    /// Run the main job on a bundled example: find the function that corrupts a variable.
    Demo(DemoArgs),
    /// Run the slot-constraint engine on a scenario file (or stdin), one command per line.
    Constraints(crate::cmd::constraints::ConstraintsArgs),
    /// Show debug-register use per CPU (and per thread with -p/-t): what hwbp's constraint
    /// model says is free, and what the kernel really accepts.
    Slots(crate::cmd::slots::SlotsArgs),
    /// Trace accesses to kernel variables on all CPUs, in the ftrace ksym tracer's filter
    /// syntax (`SYMBOL:rw-`, `SYMBOL:-w-`), with a per-function table at the end.
    Ksym(crate::cmd::ksym::KsymArgs),
    /// The bundled demo's target program (used by `hwbp demo`).
    #[command(hide = true, name = "demo-target")]
    DemoTarget,
}

/// What to watch: a thread, a process, a command hwbp starts, or CPUs.
#[derive(Debug, Args, Clone, Default)]
pub struct TargetArgs {
    /// Watch every thread of process PID, including threads it creates later.
    #[arg(
        short = 'p',
        long = "pid",
        value_name = "PID",
        group = "target",
        allow_negative_numbers = true
    )]
    pub pid: Option<i32>,
    /// Watch one thread (and threads it creates later).
    #[arg(
        short = 't',
        long = "tid",
        value_name = "TID",
        group = "target",
        allow_negative_numbers = true
    )]
    pub tid: Option<i32>,
    /// Watch on all CPUs, whatever runs there (needs root or CAP_PERFMON).
    #[arg(short = 'a', long = "all-cpus", group = "target")]
    pub all_cpus: bool,
    /// Watch on these CPUs, e.g. `0,2-3` (needs root or CAP_PERFMON).
    #[arg(short = 'C', long = "cpu", value_name = "LIST", group = "target")]
    pub cpus: Option<String>,
    /// Run this command and watch it from its first instruction: `-- ./prog args`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Options shared by `watch` and `stat`.
#[derive(Debug, Args, Clone)]
pub struct CommonWatchArgs {
    /// Watch specs: `SYMBOL[+OFF][/LEN][:ACCESS]`, `0xADDR[/LEN][:ACCESS]`,
    /// perf's `mem:ADDR[/LEN][:rwx]` or bpftrace's `watchpoint:ADDR:LEN:MODE`.
    /// ACCESS is r, w, rw or x; hwbp's own syntax defaults to w.
    #[arg(value_name = "SPEC", required = true)]
    pub specs: Vec<String>,
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON, one object per line.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Ring-buffer size per CPU in pages (a power of two).
    #[arg(long, value_name = "PAGES", default_value_t = 256)]
    pub ring_pages: usize,
    /// Watch user-space accesses only (by default kernel-mode accesses to a user address,
    /// e.g. read(2) filling a buffer, are reported too when permitted).
    #[arg(long)]
    pub user_only: bool,
    /// Write hits and the summary to FILE (created or truncated) instead of stdout, apart from
    /// a launched command's own output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Most memory for hits drained from the kernel but not yet written, e.g. 64M or 1G: the
    /// kernel's rings are emptied however slowly the output is read, and only past this are
    /// hits lost (counted and reported as lost).
    #[arg(long = "queue-size", value_name = "BYTES", default_value = "256M", value_parser = parse_size)]
    pub queue_size: usize,
}

/// Parses a size: a number of bytes with an optional K, M or G suffix (powers of 1024).
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let scale: usize = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?} is not a size: use bytes or K/M/G, e.g. 256M"
            ))
        }
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a positive size: use e.g. 64M or 1G"))
}

/// More watch pieces than debug registers: which pieces rotate, and how often.
#[derive(Debug, Args, Clone, Copy)]
pub struct RotationArgs {
    /// Make every watch flexible: watches take turns on the free debug registers and their
    /// counts are estimates (hits seen scaled by time watched / time armed, as perf scales
    /// multiplexed counters). Without it, watches are pinned (never miss a hit) while they
    /// fit, and only the ones beyond the free registers become flexible, with a notice.
    #[arg(long)]
    pub flexible: bool,
    /// Move flexible watches to the next ones every MS milliseconds. The default, 10 ms, was
    /// measured (bench/rotation/RESULTS.md): a move costs ~33 us when the watched thread runs
    /// on another CPU, so 10 ms keeps the cost near 0.3% per rotating register while a few
    /// seconds still give each of 9 watches sharing one register 30+ turns.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub rotate_ms: u64,
}

impl Default for RotationArgs {
    fn default() -> Self {
        RotationArgs {
            flexible: false,
            rotate_ms: hwbp_core::sched::DEFAULT_QUANTUM_NS / 1_000_000,
        }
    }
}

/// `hwbp watch`.
#[derive(Debug, Args, Clone)]
pub struct WatchArgs {
    /// Specs, target and output options.
    #[command(flatten)]
    pub common: CommonWatchArgs,
    /// Pinned and flexible watches.
    #[command(flatten)]
    pub rotation: RotationArgs,
    /// Print the callchain of each hit.
    #[arg(short = 'g', long = "call-graph")]
    pub callchain: bool,
    /// Stop after this many hits (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_hits: Option<u64>,
    /// Stop each accessing thread at the hit (ptrace debug registers) to report exact old and
    /// new values; the thread then runs on.
    #[arg(long)]
    pub stop: bool,
    /// Report only writes that changed the value (gdb's `watch`); without --stop, filtered
    /// in the kernel by the BPF hit handler (root, or CAP_BPF+CAP_PERFMON).
    #[arg(long)]
    pub changes_only: bool,
    /// Report only hits whose new value satisfies EXPR: `==N`, `!=N`, `<N`, `>N` or `&MASK`
    /// (N decimal: signed; 0x hex: unsigned); without --stop, filtered in the kernel.
    #[arg(long = "if", value_name = "EXPR")]
    pub condition: Option<String>,
}

/// `hwbp stat`.
#[derive(Debug, Args, Clone)]
pub struct StatArgs {
    /// Specs, target and output options.
    #[command(flatten)]
    pub common: CommonWatchArgs,
    /// Pinned and flexible watches.
    #[command(flatten)]
    pub rotation: RotationArgs,
    /// Print counts every MS milliseconds.
    #[arg(short = 'I', long = "interval", value_name = "MS")]
    pub interval_ms: Option<u64>,
}

/// `hwbp demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Print the demo's hits as JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").unwrap_err().contains("e.g. 256M"));
    }
}
