//! `hwbp slots`: debug-register use per CPU and per thread.

/// Arguments of `hwbp slots`.
#[derive(Debug, clap::Args)]
pub struct SlotsArgs {}

/// Runs `hwbp slots`.
pub fn run(_args: SlotsArgs) -> anyhow::Result<()> {
    anyhow::bail!("hwbp slots is not implemented yet")
}
