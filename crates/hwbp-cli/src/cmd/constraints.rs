//! `hwbp constraints`: the scenario runner over the core constraint engine.

/// Arguments of `hwbp constraints`.
#[derive(Debug, clap::Args)]
pub struct ConstraintsArgs {}

/// Runs a scenario.
pub fn run(_args: ConstraintsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
