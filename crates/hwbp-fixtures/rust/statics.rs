//! rust_statics: Rust statics in modules, for `crate::module::STATIC.field` expressions.
//!
//! Prints `ready pid=<pid> addr=<&config::SETTINGS>` and exits at end of stdin; the command
//! `rename` sets `config::NAME` (a `&str`, "hwbp") to "renamed \"x\"\n" and answers
//! `done renamed=1`; `retitle` edits `config::TITLE` (a `String`, empty with room for 64
//! bytes from the start, so only its length is written): push "hello", push " \"world\"\n",
//! truncate to 2, clear; it answers `done edits=4`.
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

    pub struct Point(pub i16, pub i16);

    pub static mut BYTES: [u8; 4] = [1, 2, 3, 250];
    pub static mut LETTER: char = 's';
    pub static mut RATIO: f64 = 0.5;
    pub static mut NEG: i8 = -5;
    pub static mut ORIGIN: Point = Point(3, -4);
    pub static mut LIMIT_PTR: *const Limits = std::ptr::null();
    pub static mut NAME: &str = "hwbp";
    pub static mut TITLE: String = String::new();
}

fn main() {
    let addr = std::ptr::addr_of!(config::SETTINGS);
    // SAFETY: single-threaded; nothing else holds a reference to TITLE.
    let title = unsafe { &mut *std::ptr::addr_of_mut!(config::TITLE) };
    title.reserve_exact(64);
    println!("ready pid={} addr={:p}", std::process::id(), addr);
    for line in std::io::stdin().lock().lines() {
        if line.as_deref().is_ok_and(|l| l == "retitle") {
            // One store of the length each; black_box keeps each step's store apart.
            title.push_str("hello");
            std::hint::black_box(&mut *title);
            title.push_str(" \"world\"\n");
            std::hint::black_box(&mut *title);
            title.truncate(2);
            std::hint::black_box(&mut *title);
            title.clear();
            std::hint::black_box(&mut *title);
            println!("done edits=4");
        }
        if line.as_deref().is_ok_and(|l| l == "rename") {
            // SAFETY: single-threaded; a volatile store keeps both words written.
            unsafe {
                std::ptr::write_volatile(std::ptr::addr_of_mut!(config::NAME), "renamed \"x\"\n")
            };
            println!("done renamed=1");
        }
    }
    // SAFETY: single-threaded; read once at exit so the static is kept.
    let settings = unsafe { std::ptr::read_volatile(addr) };
    // SAFETY: single-threaded; volatile reads keep the statics in the binary.
    let extra = unsafe {
        i32::from(std::ptr::read_volatile(std::ptr::addr_of!(config::BYTES))[3])
            + std::ptr::read_volatile(std::ptr::addr_of!(config::LETTER)) as i32
            + std::ptr::read_volatile(std::ptr::addr_of!(config::RATIO)) as i32
            + i32::from(std::ptr::read_volatile(std::ptr::addr_of!(config::NEG)))
            + i32::from(std::ptr::read_volatile(std::ptr::addr_of!(config::ORIGIN)).1)
            + i32::from(std::ptr::read_volatile(std::ptr::addr_of!(config::LIMIT_PTR)).is_null())
    };
    let count = config::COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::process::exit(i32::from(settings.verbose) + settings.limits[1].max + settings.id as i32 + count as i32 + extra - 54);
}
