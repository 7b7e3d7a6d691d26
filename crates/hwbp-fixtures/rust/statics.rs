//! rust_statics: Rust statics in modules, for `crate::module::STATIC.field` expressions.
//!
//! Prints `ready pid=<pid> addr=<&config::SETTINGS>` and exits at end of stdin.
use std::io::BufRead;

pub mod config {
    pub struct Limits {
        pub min: i32,
        pub max: i32,
    }

    pub struct Settings {
        pub id: u64,
        pub limits: [Limits; 2],
        pub verbose: bool,
    }

    pub static mut SETTINGS: Settings = Settings {
        id: 42,
        limits: [Limits { min: -1, max: 1 }, Limits { min: -2, max: 2 }],
        verbose: true,
    };

    pub static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(9);
}

fn main() {
    let addr = std::ptr::addr_of!(config::SETTINGS);
    println!("ready pid={} addr={:p}", std::process::id(), addr);
    for _ in std::io::stdin().lock().lines() {}
    // SAFETY: single-threaded; read once at exit so the static is kept.
    let settings = unsafe { std::ptr::read_volatile(addr) };
    let count = config::COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::process::exit(i32::from(settings.verbose) + settings.limits[1].max + settings.id as i32 + count as i32 - 54);
}
