//! Stable-Rust smoke fuzzing for the four parsers the cargo-fuzz targets in `fuzz/` cover, for
//! CI machines without nightly or libFuzzer: every committed seed is replayed, then
//! inputs mutated from the seeds with a fixed-seed generator run for a bounded time per
//! target. The properties checked are the fuzz targets' own (`fuzz/src/checks.rs`, included
//! here by path), so a crash found by either runs the same code.

use std::path::PathBuf;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../../../fuzz/src/checks.rs"]
mod checks;

/// Time per target: short enough for every CI run.
const BUDGET: Duration = Duration::from_millis(1500);
/// Upper bound on mutated inputs per target, so a fast machine still stops early.
const MAX_CASES: u32 = 200_000;

/// Words the parsers look for, spliced into mutated inputs so the generator reaches past the
/// first token.
const DICTIONARY: &[&str] = &[
    "mem:",
    "watchpoint:",
    "0x",
    "+",
    "/",
    ":",
    "rw",
    "w",
    "x",
    "r",
    "u",
    "k",
    "p",
    "::",
    "bp ",
    "del ",
    "modify ",
    "cpu=",
    "all",
    "task=",
    "type=",
    "data",
    "inst",
    "weight=",
    "flexible",
    "#",
    "\n",
    " T ",
    " t ",
    " D ",
    "\t[",
    "]",
    "ffffffff81000000",
    "18446744073709551615",
];

/// xorshift64*: a fixed seed makes every run try the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "no seeds in {}", dir.display());
    inputs.sort();
    inputs
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(input.len());
                input.drain(at.min(end)..end);
            }
            2 => input.insert(at, rng.next() as u8),
            3 => {
                let word = DICTIONARY[rng.below(DICTIONARY.len())];
                input.splice(at..at, word.bytes());
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                input.splice(at..at, other[from..].iter().copied().take(16));
            }
            _ => {
                let i = rng.below(input.len().max(1));
                if let Some(b) = input.get_mut(i) {
                    *b = [0, 0xff, b'0', b'9', b' ', b'\n', 0x80][rng.below(7)];
                }
            }
        }
    }
    input
}

fn smoke(target: &str, check: fn(&[u8])) {
    let seeds = corpus(target);
    for seed in &seeds {
        check(seed);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    let started = Instant::now();
    let mut cases = 0;
    while cases < MAX_CASES && started.elapsed() < BUDGET {
        let input = mutate(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(outcome.is_ok(), "{target} failed on input {input:?}");
        cases += 1;
    }
    assert!(cases > 100, "{target}: only {cases} inputs in {BUDGET:?}");
}

#[test]
fn watch_spec_parser_survives_mutated_specs() {
    smoke("watch_spec", checks::watch_spec);
}

#[test]
fn scenario_parser_survives_mutated_scenarios() {
    smoke("scenario", checks::scenario);
}

#[test]
fn kernel_symbol_parsers_survive_mutated_tables() {
    smoke("kernel_symbols", checks::kernel_symbols);
}

#[test]
fn ring_record_parser_survives_mutated_records() {
    smoke("ring_records", checks::ring_records);
}
