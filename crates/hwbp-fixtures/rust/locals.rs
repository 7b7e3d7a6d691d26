// A Rust function's local to watch frame by frame (built opt-level=0): rust_locals::tally::sum,
// two calls.
#[inline(never)]
fn tally(n: u64) -> u64 {
    let mut sum = n;
    sum += 7;
    sum *= 2;
    std::hint::black_box(&mut sum);
    sum
}
fn main() {
    let a = tally(1);
    let b = tally(2);
    println!("rust {}", a + b);
}
