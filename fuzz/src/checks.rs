//! The properties each fuzz target checks, shared by the cargo-fuzz targets (nightly,
//! libFuzzer) and the stable smoke test `crates/hwbp-cli/tests/fuzz_smoke.rs`, which includes
//! this file by path.
//!
//! Every parser here reads text or bytes hwbp does not control: a user's watch spec, a
//! scenario file, `/proc/kallsyms` or a System.map, and the perf ring buffer the kernel writes
//! (`kernel/events/ring_buffer.c`). Beyond "no panic", each check asserts what must hold for
//! any input.

use hwbp_core::constraint::scenario::{parse_line, Scenario};
use hwbp_core::constraint::EngineConfig;
use hwbp_core::spec::WatchSpec;
use hwbp_linux::ring::{parse_unread, RingRecord};
use hwbp_symbols::KernelSymbols;

/// Most lines of a scenario run through the engine per input (parsing covers all of them).
const MAX_SCENARIO_LINES: usize = 256;

/// `WatchSpec::parse`: a parsed spec never has length 0 and keeps its text; a refusal has a
/// message.
pub fn watch_spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match WatchSpec::parse(text) {
        Ok(spec) => {
            assert_ne!(spec.len, Some(0), "{text:?} parsed with length 0");
            assert!(!spec.text.is_empty(), "{text:?} parsed with no text");
        }
        Err(e) => assert!(!e.to_string().is_empty(), "{text:?}: empty error message"),
    }
}

/// The constraint scenario language: every line parses or is refused with a message, and a
/// scenario of lines that parse runs through the engine without panicking.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut scenario = Scenario::new(EngineConfig::default());
    for line in text.lines().take(MAX_SCENARIO_LINES) {
        match parse_line(line) {
            Ok(_) => {
                let outcome = scenario.run_line(line).expect("a line that parsed runs");
                if let Some((name, outcome)) = outcome {
                    assert!(!scenario.report(name, &outcome).to_string().is_empty());
                }
            }
            Err(e) => assert!(!e.to_string().is_empty(), "{line:?}: empty error message"),
        }
    }
}

/// `/proc/kallsyms` and System.map text: a table that parses resolves each of its own names
/// and symbolizes each of its own addresses.
pub fn kernel_symbols(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [
        KernelSymbols::parse_kallsyms(text, "fuzz kallsyms"),
        KernelSymbols::parse_system_map(text, "fuzz System.map"),
    ] {
        let Ok(table) = parsed else { continue };
        for symbol in table.symbols().iter().take(64) {
            let _ = table.resolve(&symbol.name);
            let _ = table.symbolize(symbol.addr);
        }
    }
}

/// Perf ring-buffer records: parsing never consumes more than it was given, and the records
/// (and bytes consumed) are the same wherever the ring wrapped the data in two.
pub fn ring_records(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let callchain = control & 1 == 1;
    let mut scratch = Vec::new();
    let mut whole = Vec::new();
    let consumed_whole = parse_unread(bytes, &[], callchain, &mut scratch, &mut |r| whole.push(r));
    assert!(consumed_whole <= bytes.len());
    let split = usize::from(control >> 1) % (bytes.len() + 1);
    let (first, second) = bytes.split_at(split);
    let mut wrapped: Vec<RingRecord> = Vec::new();
    let consumed_wrapped = parse_unread(first, second, callchain, &mut scratch, &mut |r| {
        wrapped.push(r)
    });
    assert_eq!(consumed_whole, consumed_wrapped, "split at {split}");
    assert_eq!(whole, wrapped, "split at {split}");
}
