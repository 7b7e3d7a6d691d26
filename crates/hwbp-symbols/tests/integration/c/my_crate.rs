// Rust fixture: a mangled static, printed address, then block on stdin.
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};

pub static COUNTER: AtomicU64 = AtomicU64::new(0);

fn main() {
    COUNTER.fetch_add(1, Ordering::SeqCst);
    let addr = std::hint::black_box(&COUNTER) as *const AtomicU64 as usize;
    println!("pid={} counter={:#x}\nready", std::process::id(), addr);
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}
