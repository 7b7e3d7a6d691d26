//! The run's clock: `CLOCK_MONOTONIC`, the clock the kernel stamps perf samples with
//! (`kernel/events/core.c`, `perf_event_clock` with `use_clockid`).

/// `CLOCK_MONOTONIC` now, in ns: the clock of perf sample times
/// (`hwbp_linux::perf::attr::SAMPLE_CLOCK`).
pub(crate) fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}
