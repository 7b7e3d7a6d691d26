//! `hwbp stat`.

/// Runs `hwbp stat`.
pub fn run(_args: crate::args::StatArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
