//! `hwbp watch`.

/// Runs `hwbp watch`.
pub fn run(_args: crate::args::WatchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
