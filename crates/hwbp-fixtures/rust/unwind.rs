//! Callchains through Rust (built -g -C opt-level=1, no frame pointers):
//! `main` -> `unwind_rs::ledger::post` (never inlined) -> `unwind_rs::ledger::add` (always
//! inlined) writes the static `unwind_rs::ledger::TOTAL`. Usage: unwind_rs N
pub mod ledger {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub static TOTAL: AtomicU64 = AtomicU64::new(0);

    #[inline(always)]
    fn add(v: u64) {
        TOTAL.store(TOTAL.load(Ordering::Relaxed) * 3 + v, Ordering::Relaxed);
    }

    #[inline(never)]
    pub fn post(v: u64) -> u64 {
        add(v * 2);
        TOTAL.load(Ordering::Relaxed) & 0xff
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let mut sum = 0;
    for i in 0..n {
        sum += ledger::post(std::hint::black_box(i));
    }
    println!("sum {sum}");
}
