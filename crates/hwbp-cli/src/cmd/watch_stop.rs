//! `hwbp watch --stop`: stop mode through ptrace debug registers.

/// Runs `hwbp watch --stop`.
pub fn run(_args: crate::args::WatchArgs) -> anyhow::Result<()> {
    Err(crate::exit::usage(
        "--stop is not implemented yet: use hwbp watch without --stop",
    ))
}
