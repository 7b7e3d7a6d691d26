//! Command-line arguments as the user typed them (clap derive). Each subcommand turns these
//! into a validated plan before it touches the kernel.

use std::path::PathBuf;

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
    /// Record every access to a file (-o FILE) for `hwbp report`: the watches, the
    /// symbolized hits with values and stacks, the summary.
    Record(RecordArgs),
    /// Count accesses exactly, per watchpoint, per thread and per accessing function.
    Stat(StatArgs),
    /// Run the main job on a bundled example: find the function that corrupts a variable.
    Demo(DemoArgs),
    /// Run the slot-constraint engine on a scenario file (or stdin), one command per line.
    Constraints(ConstraintsArgs),
    /// Show debug-register use per CPU (and per thread with -p/-t): what hwbp's constraint
    /// model says is free, and what the kernel really accepts.
    Slots(SlotsArgs),
    /// Trace accesses to kernel variables on all CPUs, in the ftrace ksym tracer's filter
    /// syntax (`SYMBOL:rw-`, `SYMBOL:-w-`), with a per-function table at the end.
    Ksym(KsymArgs),
    /// Read a recording: stat's tables, the changes of value, folded stacks, or an HTML page.
    Report(ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `hwbp man | man -l -`.
    Man(ManArgs),
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
    /// perf's `mem:ADDR[/LEN][:rwx]`, bpftrace's `watchpoint:ADDR:LEN:MODE`, or an
    /// expression over the program's DWARF: `cfg.limits[2].max`, `ring[7]`, `cur->state`,
    /// `*head`, `*(int *)0xADDR`, `'parse'::depth`, `ns::var`, `krate::m::STATIC.field`.
    /// ACCESS is r, w, rw or x; hwbp's own syntax defaults to w.
    #[arg(value_name = "SPEC", required = true)]
    pub specs: Vec<String>,
    /// The target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Evaluate each expression once and watch the address found (gdb's `watch -l`),
    /// instead of following the pointers it goes through.
    #[arg(short = 'l', long)]
    pub location: bool,
    /// Follow the processes the target creates (fork, vfork, clone) and the programs they
    /// exec, each watching in its own images: with -p PID (off by default: an attached
    /// process's children are not followed without it), or for a launched command that
    /// defines the watch itself (one that does not is always followed).
    #[arg(long)]
    pub follow_children: bool,
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
    /// When the watch ends before the command given after `--` (--max-hits, --duration,
    /// Ctrl-C, an error), leave the command running, detached, and print its pid, instead of
    /// ending it (SIGTERM, then SIGKILL after 0.5 s). Processes given with -p/-t are never
    /// ended.
    #[arg(long)]
    pub keep_running: bool,
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
    /// Print the callchain of each hit (user frames unwound with the unwind tables, as
    /// `--call-graph dwarf`).
    #[arg(short = 'g')]
    pub callchain: bool,
    /// Callchains, with how the user frames are found: `dwarf[,SIZE]` copies SIZE bytes of
    /// stack per hit (default 8192) and unwinds them with each image's .eh_frame/.debug_frame;
    /// `fp` walks frame pointers (cheaper; loses callers in code built without them).
    #[arg(long = "call-graph", value_name = "fp|dwarf[,SIZE]", value_parser = hwbp::CallGraph::parse)]
    pub call_graph: Option<hwbp::CallGraph>,
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
    /// (N decimal: signed; 0x hex: unsigned; or an enum constant of the watched variable's
    /// type, `==MODE_ON`); without --stop, filtered in the kernel.
    #[arg(long = "if", value_name = "EXPR")]
    pub condition: Option<String>,
    /// For a local (`FUNC::LOCAL`): watch this many frames of FUNC, then end (each frame is
    /// its own watch instance; default: every frame until the run ends).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub frames: Option<u64>,
    /// For a `char *` watch without --stop: read at most N characters of the string at each
    /// hit, in the kernel at the trap (default 200, gdb's `print elements`; a longer string
    /// ends in `...`; at most 4096).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub string_chars: Option<u32>,
}

/// `hwbp record`: the options of `hwbp watch`, written to `-o FILE`.
#[derive(Debug, Args, Clone)]
pub struct RecordArgs {
    /// What to watch and how, as for `hwbp watch` (`-o FILE` is required).
    #[command(flatten)]
    pub watch: WatchArgs,
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

/// Arguments of `hwbp ksym`.
#[derive(Debug, clap::Args)]
pub struct KsymArgs {
    /// Filters in the ksym tracer's syntax: `SYMBOL[+OFF][/LEN]:OP` with OP `rw-` (reads and
    /// writes) or `-w-` (writes), e.g. `pid_max:rw-`. SYMBOL may also be a kernel address
    /// (`0xffffffff82000000:-w-`).
    #[arg(value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Read more filters from FILE, one per line (`#` starts a comment).
    #[arg(long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Resolve symbols with this System.map (for kernels whose /proc/kallsyms lists no
    /// variables).
    #[arg(long, value_name = "FILE", conflicts_with = "vmlinux")]
    pub system_map: Option<PathBuf>,
    /// Resolve symbols with the `.symtab` of this uncompressed vmlinux.
    #[arg(long, value_name = "FILE")]
    pub vmlinux: Option<PathBuf>,
    /// Watch only these CPUs (`0,2-3`) instead of all.
    #[arg(short = 'C', long = "cpu", value_name = "LIST")]
    pub cpus: Option<String>,
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop after this many accesses.
    #[arg(long, value_name = "N")]
    pub max_hits: Option<u64>,
    /// Do not print trace lines, only the final table.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Arguments of `hwbp slots`.
#[derive(Debug, clap::Args)]
pub struct SlotsArgs {
    /// Watch specs (as for `hwbp watch`): print the rotation plan `hwbp watch` would use for
    /// them on the target given with -p/-t.
    #[arg(value_name = "SPEC")]
    pub specs: Vec<String>,
    /// Evaluate expressions once and plan the address found (as `hwbp watch -l`).
    #[arg(short = 'l', long)]
    pub location: bool,
    /// Pinned and flexible watches (for the plan).
    #[command(flatten)]
    pub rotation: RotationArgs,
    /// Also show every thread of process PID.
    #[arg(short = 'p', long = "pid", value_name = "PID", conflicts_with = "tid")]
    pub pid: Option<i32>,
    /// Also show thread TID.
    #[arg(short = 't', long = "tid", value_name = "TID")]
    pub tid: Option<i32>,
}

/// `hwbp report`.
#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// The recording, as `hwbp record -o FILE` writes it.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this watch: its spec as recorded, or its number from 0 (repeat for more).
    #[arg(long = "watch", value_name = "SPEC")]
    pub watches: Vec<String>,
    /// Only this thread.
    #[arg(long, value_name = "TID", allow_negative_numbers = true)]
    pub tid: Option<i32>,
    /// Only hits whose function (or `file:line`) contains TEXT.
    #[arg(long, value_name = "TEXT")]
    pub function: Option<String>,
    /// Only hits at or after SECS seconds since the watch was armed.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub from: Option<f64>,
    /// Only hits before SECS seconds since the watch was armed.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub to: Option<f64>,
    /// Print the timeline of changes instead of the tables: every write that changed the
    /// value, `old -> new`, with its time, thread and writer.
    #[arg(long)]
    pub changes: bool,
    /// Print folded stacks (`root;...;leaf count`, weighted by hits) for inferno,
    /// flamegraph.pl or speedscope, instead of the tables.
    #[arg(long, conflicts_with_all = ["changes", "json"])]
    pub folded: bool,
    /// Print JSON: one `report` object (with --changes: one `change` object per line).
    #[arg(long)]
    pub json: bool,
    /// Write a self-contained HTML page (plots of the value over time, the writers, the
    /// tables) to OUT instead of printing.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
}

/// `hwbp completions`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. Install e.g. with
    /// `hwbp completions bash > /etc/bash_completion.d/hwbp`.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `hwbp man`.
#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// A subcommand's own page (`hwbp-watch(1)`) instead of hwbp's.
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
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
