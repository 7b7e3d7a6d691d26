//! `hwbp demo`.

/// Runs `hwbp demo`.
pub fn run(_args: crate::args::DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

/// The demo's target program.
pub fn run_target() -> anyhow::Result<()> {
    Ok(())
}
