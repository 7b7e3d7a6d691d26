//! Test target programs for hwbp's real-kernel tests, and a driver for them.
//!
//! `build.rs` compiles the C programs in `c/` with `gcc -g -O1
//! -fno-omit-frame-pointer` into Cargo's `OUT_DIR`; the constants below are
//! their absolute paths.
//!
//! # Protocol
//!
//! Every fixture prints one line `ready pid=<pid> addr=<0xhex> [key=value ...]`
//! on stdout (flushed) and then does nothing until it reads a command line on
//! stdin. Each command is answered with one `done key=value ...` line. At end
//! of input (stdin closed) the fixture exits with status 0. A malformed command
//! is answered with `error <message>` and exit status 2.
//!
//! All stores to a watched variable are single volatile stores of the
//! variable's full width with no load of it in between, so a write watch and a
//! read/write watch both see exactly one hit per store.
//!
//! [`Fixture`] spawns a fixture, parses its ready line, sends commands and
//! reads answers, and kills and reaps the process when dropped, so no fixture
//! outlives a failing test.
//!
//! ```no_run
//! use hwbp_fixtures::{Fixture, WRITER};
//! let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
//! let counter_address = writer.addr();
//! let done = writer.command("go 10").unwrap();
//! assert_eq!(done.field("writes"), Some("10"));
//! # let _ = counter_address;
//! ```

pub mod skip;

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

/// `writer` (PIE): an initialized `.data` variable `long counter = 0x1234`.
///
/// Ready line: `ready pid=P addr=&counter bump=&bump_counter stray=&stray_write
/// main_reached=&main_reached initial=4660`.
/// - `go N`: the noinline `bump_counter(value)` stores to `counter` exactly N
///   times; `counter` ends at its previous value + N. Answer: `done writes=N value=V`.
/// - `stray`: the noinline `stray_write(value)` stores to `counter` once more
///   (previous value + 1000). Answer: `done stray=1 value=V`.
///
/// `int main_reached` is 0 until main's first statement sets it to 1, so a
/// reader can tell whether the program has reached `main`.
pub const WRITER: &str = concat!(env!("OUT_DIR"), "/writer");

/// `aggregates` (PIE, built without frame pointers): `struct pair { long left, right; }
/// pair`, `struct wide { long v[8]; } wide` (64 bytes), `char line[32]` written by
/// `snprintf`, a bit-field struct `bits`, and initialized `char`/`int` arrays for gdb checks.
///
/// `aggregates burst N` writes `wide.v[k] = r * 8 + k + 1` for 8N stores and exits (no
/// protocol). Otherwise: ready line `ready pid=P addr=&pair wide=&wide line=&line bits=&bits`;
/// `pair N` (left = i, then right = 100 + i, for i in 1..=N; `done writes=2N`), `fill N`
/// (`snprintf(line, 32, "value %d", i)`; `done fills=N`), `bits N` (a = i, b = -i, c =
/// 10 i; `done writes=3N`), `text N` (`const char *text = names[i % 3]`: `"alpha"`, `"beta\t2"`,
/// `line`; `done writes=N`). After each answer it calls the noinline `answered()`.
pub const AGGREGATES: &str = concat!(env!("OUT_DIR"), "/aggregates");

/// `strings` (`-no-pie`, built without frame pointers): `const char *msg` set by the noinline
/// `point` to `"alpha"`, `"beta gamma"`, a heap copy of `"doomed"` (overwritten and freed
/// right after), `char scratch[32]` holding `"scratch 1"` (rewritten right after),
/// `long_text` (the alphabet ten times), NULL, and `"alpha"` again, seven stores, at each
/// `repoint` (`done writes=7`). Ready line `ready pid=P addr=&msg`; exits at end of input.
pub const STRINGS: &str = concat!(env!("OUT_DIR"), "/strings");

/// `chain_pair` (`-no-pie`, built without frame pointers): `struct pair { long left, right; }
/// first = {1, 2}, second = {30, 40}` and `struct pair *cur = &first`, for `*cur` as a value
/// chain. Ready line `ready pid=P addr=&cur`; `pair A B` (`cur->left = A`, then right away
/// `cur->right = B`; `done writes=2`), `point first|second|null` (`cur = ...`; `done
/// writes=1`), `stray V` (`first.left = V`; `done writes=1`), `leave V` (`cur = &second`,
/// then right away `first.left = V`; `done writes=2`); exits at end of input.
pub const CHAIN_PAIR: &str = concat!(env!("OUT_DIR"), "/chain_pair");

/// `aggregates_nopie`: [`AGGREGATES`] linked `-no-pie` (its initialized arrays at fixed
/// addresses, read from the file).
pub const AGGREGATES_NOPIE: &str = concat!(env!("OUT_DIR"), "/aggregates_nopie");

/// `writer_nopie`: the same program as [`WRITER`] linked `-no-pie`, so its
/// addresses are the link-time addresses and the same in every run.
pub const WRITER_NOPIE: &str = concat!(env!("OUT_DIR"), "/writer_nopie");

/// `threads`: a global `long shared_var = 1` written from several threads.
///
/// Usage `threads [PRESTART]` (default 2): PRESTART threads are started and
/// blocked before the ready line. Ready line: `ready pid=P addr=&shared_var
/// writer=&thread_writer prestarted=K tids=T1,T2,...` (the prestarted threads).
/// - `go K M W` (once per run): the first K prestarted threads each store to
///   `shared_var` W times, then M threads created only after the line was read
///   each store W times; every store goes through the noinline
///   `thread_writer`. Answer: `done total=(K+M)*W new_tids=...`. Prestarted
///   threads beyond K exit without writing.
pub const THREADS: &str = concat!(env!("OUT_DIR"), "/threads");

/// `shlib`: a PIE linked against [`LIBHWBPFIX`] (rpath `$ORIGIN`).
///
/// Ready line: `ready pid=P addr=&lib_value bump=&lib_bump initial=7`, where
/// `lib_value` (`int`, 4 bytes) lives in the library's own `.data`.
/// - `go N`: `lib_bump(N)` loads `lib_value` once, then stores to it N times.
///   Answer: `done writes=N value=V`.
pub const SHLIB: &str = concat!(env!("OUT_DIR"), "/shlib");

/// `libhwbpfix.so`: the shared library [`SHLIB`] loads; defines `int lib_value
/// = 7`, `int lib_bump(int n)` and `int *lib_value_address(void)`.
pub const LIBHWBPFIX: &str = concat!(env!("OUT_DIR"), "/libhwbpfix.so");

/// `liblate.so`: a library [`LOADER`] (or python's ctypes) maps late. Defines `long
/// late_counter = 0`, a constructor that stores 1000 to it once at load, and `long
/// late_bump(long n)`, which stores 1, 2, ..., n.
pub const LIBLATE: &str = concat!(env!("OUT_DIR"), "/liblate.so");

/// `loader LIB [N [ROUNDS [wait]]]` (PIE): ROUNDS times (1) `dlopen(LIB)`, `late_bump(N)`
/// (3), `dlclose`, then stores the rounds done to its `long rounds_done`; defines no variable
/// the tests watch. With `wait`: prints `ready pid=P addr=&rounds_done` and waits for a line
/// on stdin before the first `dlopen`. Prints `done rounds=R last=V`.
pub const LOADER: &str = concat!(env!("OUT_DIR"), "/loader");

/// `tree_count N` (PIE): stores 0, 1, ..., N to its global `long tree_counter = -1` (N+1
/// stores) and exits 0.
pub const TREE_COUNT: &str = concat!(env!("OUT_DIR"), "/tree_count");

/// `kread`: a `char buffer[64]` (in `.data`) that only the kernel writes.
///
/// Ready line: `ready pid=P addr=&buffer size=64 payload_len=30`.
/// - `go [N]` (default 1): N times, write a 30-byte payload into a pipe from a
///   separate array, then `read(2)` it into `buffer` (a kernel-mode write to
///   user memory). Answer: `done reads=N bytes=30*N`.
pub const KREAD: &str = concat!(env!("OUT_DIR"), "/kread");

/// Locals watched frame by frame, built `-O0` (`locals recurse|calls|threads|longjmp`): see
/// `c/locals.c`.
pub const LOCALS: &str = concat!(env!("OUT_DIR"), "/locals");

/// A C++ method's local, built `-O0`: `shop::Counter::bump::t` in two calls (see
/// `cxx/locals.cpp`).
pub const CXX_LOCALS: &str = concat!(env!("OUT_DIR"), "/cxx_locals");

/// A Rust function's local, built `opt-level=0`: `rust_locals::tally::sum` in two calls (see
/// `rust/locals.rs`).
pub const RUST_LOCALS: &str = concat!(env!("OUT_DIR"), "/rust_locals");

/// [`LOCALS`] built `-O2`: its locals live in registers or are optimized out, `helper` is
/// inlined everywhere.
pub const LOCALS_O2: &str = concat!(env!("OUT_DIR"), "/locals_o2");

/// `conds` (`-no-pie`: the same addresses in every run; no stdin protocol): the globals `s8`, `u8`, `s16`, `u16`, `s32`, `u32`,
/// `s64`, `u64` (`signed char` .. `unsigned long`, each initially 1), each written the sequence
/// [`CONDS_SEQUENCE`] converted to its type, one after the other; then it exits 0.
pub const CONDS: &str = concat!(env!("OUT_DIR"), "/conds");

/// The values [`CONDS`] stores in each of its globals, before conversion to the type.
pub const CONDS_SEQUENCE: [u64; 7] = [3, 0xffff_ffff, 5, 6, 0, 4_000_000_000, 2];

/// `sequence` (PIE, threads): a global `long value = 0` written with known values, for exact
/// old -> new checks in stop mode.
///
/// Ready line: `ready pid=P addr=&value store=&store_value initial=0`. Every store goes through
/// the noinline `store_value(v)`.
/// - `go N`: stores 1, 2, ..., N. Answer: `done writes=N value=N`.
/// - `dup N`: stores 1, 1, 2, 2, ..., N, N. Answer: `done writes=2N value=N`.
/// - `neg N`: stores 1, -1, 2, -2, ..., N, -N. Answer: `done writes=2N value=-N`.
/// - `threads M W`: M threads created now; thread k (1..=M) stores k*1000000+i for i = 1..=W.
///   Answer: `done writes=M*W new_tids=...`.
pub const SEQUENCE: &str = concat!(env!("OUT_DIR"), "/sequence");

/// `churn`: a global `long churn_var = 1` written by short-lived threads, a forked child, and
/// the program again after it re-executes itself.
///
/// Ready line: `ready pid=P addr=&churn_var writer=&churn_write image=1` (`image=2` after
/// `exec`).
/// - `go T K`: T threads (at most 64 alive at once) each store K times, then exit. Answer:
///   `done threads=T writes=T*K`.
/// - `fork K`: a forked child stores K times and exits. Answer: `done child=PID writes=K
///   status=0`.
/// - `exec`: re-executes the program (same pid), which prints a new ready line (`image=2`).
pub const CHURN: &str = concat!(env!("OUT_DIR"), "/churn");

/// `many` (PIE): twelve globals `long v0` .. `long v11` and a 64-byte
/// `struct config cfg { long id; char name[8]; struct limit { long min, max; } limits[3]; }`,
/// for flexible (rotating) watches and field names.
///
/// Ready line: `ready pid=P addr=&v0 cfg=&cfg cfg_size=64`.
/// - `go N MS`: stores to v0, v1, ..., v11 in turn, N rounds (N stores to each), paced
///   evenly over MS milliseconds (a short sleep every 100 rounds). Answer: `done writes=N`.
/// - `fields N MS`: stores to `cfg.id`, `cfg.limits[2].max` and `cfg.name[5]` in turn, N
///   times each, paced evenly over MS milliseconds (a sleep before every round). Answer:
///   `done writes=N`.
pub const MANY: &str = concat!(env!("OUT_DIR"), "/many");

/// `spin` (PIE, threads): writer threads storing to a global `long spin_var` in a tight loop
/// until stdin closes, for detaching from a target while it writes.
///
/// Usage `spin [WRITERS]` (1..=16, default 1). Ready line: `ready pid=P addr=&spin_var
/// writer=&spin_store tids=T1,...` (the writer threads, already writing). Every store goes
/// through the noinline `spin_store`.
/// - `count`: answer `done writes=W`, the stores made so far by all writers.
/// - `catch`: installs a `SIGTRAP` handler that counts traps by `si_code`. Answer `done
///   catch=1`. Until then `SIGTRAP` keeps its default action (it kills the program).
/// - `traps`: answer `done traps=N tkill=T hwbkpt=H brkpt=B` (`SI_TKILL`, `TRAP_HWBKPT`,
///   `TRAP_BRKPT` counts since `catch`).
/// - `icebp`: the main thread executes `icebp` (`int1`), a debug exception with nothing in DR6
///   that the kernel answers with `SIGTRAP` `TRAP_BRKPT`, like the stray ones of
///   `bench/sigtrap`. Answer `done icebp=1` (if it survives).
/// - end of input: the writers stop and are joined; exit status 0.
pub const SPIN: &str = concat!(env!("OUT_DIR"), "/spin");

/// `forever` (PIE): a global `long forever_var = 0` stored to in a loop that never ends by
/// itself, for watches that end before the command they launched.
///
/// Usage `forever [PAUSE_US]` (default 1000; 0 for none). Ready line: `ready pid=P
/// addr=&forever_var writer=&forever_store`; then it stores 1, 2, 3, ... to `forever_var`
/// through the noinline `forever_store`, pausing PAUSE_US between stores, until killed. It
/// reads no stdin and keeps its stdout open.
pub const FOREVER: &str = concat!(env!("OUT_DIR"), "/forever");

/// `typed` (PIE, built from `c/typed.c` and `c/typed_b.c`): globals of every C type kind for
/// watch expressions and typed values: `config_t cfg` (nested struct, array of structs, char
/// array, `double`, `float`, an enum and a flag enum member), a linked list `nodes[3]`/`head`,
/// `struct conn *cur` (pointing into `conns[2]`), `int counter = -1`, `signed char`,
/// `unsigned char`, `bool`, `long long`, `uint32_t`, `int matrix[2][3]`, `void *vp`,
/// static locals `bump::calls` (100) and `parse::depth` (5), the automatic local `parse::tmp`,
/// and `static int file_static` in both files (11 in typed.c, 22 in typed_b.c).
///
/// Ready line: `ready pid=P addr=&cfg head=&head cur=&cur`.
/// - `max N`: `cfg.limits[2].max = N`. Answer: `done max=N`.
/// - `retarget`: `cur` flips between `&conns[0]` and `&conns[1]`. Answer: `done cur=0x...`.
/// - `state N`: `cur->state = N`. Answer: `done state=N`.
/// - `calls`: `bump(1)`, `parse(1)`, `bump_b(1)` and both `file_static`s incremented. Answer: `done calls=C static=S`.
pub const TYPED: &str = concat!(env!("OUT_DIR"), "/typed");

/// `typed_nopie`: [`TYPED`] linked `-no-pie`: link-time addresses, and pointers initialized
/// in the file (`head`, `cur`, `nodes[i].next`) hold their runtime values.
pub const TYPED_NOPIE: &str = concat!(env!("OUT_DIR"), "/typed_nopie");

/// `chain` (`-no-pie`, from `c/chain.c`): one fixed sequence of writes from `main`, no input,
/// exit 0: the value chain of `p->val` (p: NULL -> &a -> &b -> &c, one write through the old
/// object after each move), `hp->o->val` through two pointers (ending with `hp` NULL), then one
/// write of each C type kind (`neg` -7 twice then 0, `ch`, `ok`, `color`, `fl`, `fv`, `dv`,
/// `ip`, `pr.hi` (a 12-byte struct, three registers), `arr[2]`, `big[100]` of `uint8_t big[16384]`). Watched from the first
/// instruction by hwbp and gdb in the differential tests.
pub const CHAIN: &str = concat!(env!("OUT_DIR"), "/chain");

/// `scoped` (C++, `g++ -g -no-pie`): `net::port` (8080), `net::inner::depth` (-9),
/// `Registry::count` (3), `Registry::corners[2]` (`{{1, 2}, {-3, 4}}`), `geo::origin`
/// (`{5, -6}`), `Derived derived` (`struct Derived : Base`, `{{a = 1, on = true}, b = 2}`). Ready line `ready pid=P addr=&net::port`; exits at end of input.
pub const SCOPED: &str = concat!(env!("OUT_DIR"), "/scoped");

/// `rust_statics` (rustc `-g`): `rust_statics::config::SETTINGS` (`Settings { id: 42, limits:
/// [Limits { min: -1, max: 1 }, Limits { min: -2, max: 2 }], verbose: true }`) and
/// `rust_statics::config::COUNTER` (`AtomicU32` 9). Ready line `ready pid=P
/// addr=&SETTINGS`; exits at end of input.
pub const RUST_STATICS: &str = concat!(env!("OUT_DIR"), "/rust_statics");

/// `unwind N`: main -> work -> fill -> snprintf into the global `char buf[64]`, N times, built
/// `-O1 -g -fomit-frame-pointer -no-pie` (callchains that need the unwind tables).
pub const UNWIND: &str = concat!(env!("OUT_DIR"), "/unwind");

/// `unwind_cxx N`: main -> `shapes::detail::Recorder::record` -> the inlined
/// `shapes::detail::store` writes `shapes::g_total`, N times (no frame pointers).
pub const UNWIND_CXX: &str = concat!(env!("OUT_DIR"), "/unwind_cxx");

/// `unwind_rs N`: main -> `unwind_rs::ledger::post` -> the inlined `unwind_rs::ledger::add`
/// writes `unwind_rs::ledger::TOTAL`, N times (no frame pointers, not PIE).
pub const UNWIND_RS: &str = concat!(env!("OUT_DIR"), "/unwind_rs");

/// A parsed `ready ...` or `done ...` line: `key=value` fields after the first word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureLine {
    /// The first word: `ready` or `done`.
    pub kind: String,
    /// The `key=value` fields in the order printed.
    pub fields: Vec<(String, String)>,
}

impl FixtureLine {
    /// Parses `kind key=value key=value ...`; words without `=` are rejected.
    pub fn parse(line: &str) -> io::Result<Self> {
        let mut words = line.split_whitespace();
        let kind = words
            .next()
            .ok_or_else(|| invalid(format!("empty line from fixture: {line:?}")))?
            .to_owned();
        let fields = words
            .map(|word| {
                word.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| invalid(format!("field {word:?} has no '=' in {line:?}")))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { kind, fields })
    }

    /// The value of field `key`, if present.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Field `key` as an integer: `0x` prefix for hex, decimal otherwise.
    pub fn number(&self, key: &str) -> io::Result<u64> {
        let text = self
            .field(key)
            .ok_or_else(|| invalid(format!("fixture line has no field {key:?}: {self:?}")))?;
        parse_number(text).ok_or_else(|| invalid(format!("field {key}={text:?} is not a number")))
    }

    /// Field `key` as a comma-separated list of decimal integers (empty for `key=`).
    pub fn list(&self, key: &str) -> io::Result<Vec<i32>> {
        let text = self
            .field(key)
            .ok_or_else(|| invalid(format!("fixture line has no field {key:?}: {self:?}")))?;
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| invalid(format!("{key}={text:?} is not a list of integers")))
            })
            .collect()
    }
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A running fixture process with piped stdin/stdout, past its ready line.
///
/// Dropping it kills (SIGKILL) and reaps the process unless [`Fixture::finish`]
/// already waited for it.
#[derive(Debug)]
pub struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    ready: FixtureLine,
    pid: i32,
    addr: u64,
    reaped: bool,
}

impl Fixture {
    /// Starts `path` with `args`, stdin and stdout piped (stderr inherited), and
    /// reads its ready line.
    pub fn spawn(path: &str, args: &[&str]) -> io::Result<Self> {
        let child = Command::new(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run fixture {path}: {e}")))?;
        Self::from_child(child)
    }

    /// Takes over a child that was started with piped stdin and stdout by
    /// other means (for example under ptrace), and reads its ready line.
    pub fn from_child(mut child: Child) -> io::Result<Self> {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let mut fixture = Self {
            stdin,
            stdout: match stdout {
                Some(out) => BufReader::new(out),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(invalid("fixture child has no piped stdout".to_owned()));
                }
            },
            child,
            ready: FixtureLine {
                kind: String::new(),
                fields: Vec::new(),
            },
            pid: 0,
            addr: 0,
            reaped: false,
        };
        // On error the fixture is dropped here, which kills and reaps the child.
        let ready = fixture.read_parsed("ready")?;
        fixture.pid = i32::try_from(ready.number("pid")?)
            .map_err(|_| invalid("ready line pid out of range".to_owned()))?;
        fixture.addr = ready.number("addr")?;
        fixture.ready = ready;
        Ok(fixture)
    }

    /// The fixture's process id, as printed on its ready line.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The `addr=` field of the ready line: the fixture's watched variable.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The whole ready line, for the fixture-specific fields.
    pub fn ready(&self) -> &FixtureLine {
        &self.ready
    }

    /// Sends one command line (a newline is appended).
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "fixture stdin closed"))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// Reads one raw line from the fixture's stdout, without its newline.
    pub fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("fixture {} closed stdout", self.pid),
            ));
        }
        Ok(line.trim_end_matches('\n').to_owned())
    }

    /// Reads the answer to a command: a `done ...` line.
    pub fn read_done(&mut self) -> io::Result<FixtureLine> {
        self.read_parsed("done")
    }

    /// Sends `line` and reads its `done ...` answer.
    pub fn command(&mut self, line: &str) -> io::Result<FixtureLine> {
        self.send(line)?;
        self.read_done()
    }

    /// Closes stdin (the fixture exits at end of input) and waits for the exit status.
    pub fn finish(mut self) -> io::Result<ExitStatus> {
        self.stdin = None;
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }

    fn read_parsed(&mut self, kind: &str) -> io::Result<FixtureLine> {
        let line = self.read_line()?;
        let parsed = FixtureLine::parse(&line)?;
        if parsed.kind != kind {
            return Err(invalid(format!(
                "expected a '{kind}' line, fixture printed {line:?}"
            )));
        }
        Ok(parsed)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if !self.reaped {
            // Errors mean the process is already gone; nothing else to clean up.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_numbers() {
        let line = FixtureLine::parse("ready pid=42 addr=0x7f00 tids=1,2,3 empty=").unwrap();
        assert_eq!(line.kind, "ready");
        assert_eq!(line.number("pid").unwrap(), 42);
        assert_eq!(line.number("addr").unwrap(), 0x7f00);
        assert_eq!(line.list("tids").unwrap(), vec![1, 2, 3]);
        assert_eq!(line.list("empty").unwrap(), Vec::<i32>::new());
        assert!(line.number("missing").is_err());
        assert!(FixtureLine::parse("done stray").is_err());
    }

    #[test]
    fn writer_counts_and_exits_zero() {
        let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
        assert_eq!(writer.ready().number("initial").unwrap(), 0x1234);
        assert_ne!(writer.addr(), 0);
        let done = writer.command("go 5").unwrap();
        assert_eq!(done.number("writes").unwrap(), 5);
        assert_eq!(done.number("value").unwrap(), 0x1234 + 5);
        let stray = writer.command("stray").unwrap();
        assert_eq!(stray.number("value").unwrap(), 0x1234 + 5 + 1000);
        assert_eq!(writer.finish().unwrap().code(), Some(0));
    }

    #[test]
    fn writer_nopie_has_fixed_addresses() {
        let first = Fixture::spawn(WRITER_NOPIE, &[]).unwrap();
        let second = Fixture::spawn(WRITER_NOPIE, &[]).unwrap();
        assert_eq!(first.addr(), second.addr());
        // Non-PIE x86_64 executables are linked at 0x400000.
        assert!(first.addr() < 0x1000_0000, "addr {:#x}", first.addr());
        assert_ne!(
            first.ready().number("bump").unwrap(),
            first.ready().number("stray").unwrap()
        );
    }

    #[test]
    fn threads_reports_prestarted_and_new_threads() {
        let mut threads = Fixture::spawn(THREADS, &["3"]).unwrap();
        let tids = threads.ready().list("tids").unwrap();
        assert_eq!(tids.len(), 3);
        let done = threads.command("go 2 3 1000").unwrap();
        assert_eq!(done.number("total").unwrap(), 5000);
        let new_tids = done.list("new_tids").unwrap();
        assert_eq!(new_tids.len(), 3);
        assert!(new_tids.iter().all(|t| !tids.contains(t)));
        assert_eq!(threads.finish().unwrap().code(), Some(0));
    }

    #[test]
    fn shlib_value_lives_in_the_library() {
        let mut shlib = Fixture::spawn(SHLIB, &[]).unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", shlib.pid())).unwrap();
        let addr = shlib.addr();
        let mapping = maps
            .lines()
            .find(|line| {
                let range = line.split_whitespace().next().unwrap();
                let (start, end) = range.split_once('-').unwrap();
                let start = u64::from_str_radix(start, 16).unwrap();
                let end = u64::from_str_radix(end, 16).unwrap();
                (start..end).contains(&addr)
            })
            .unwrap();
        assert!(mapping.ends_with("/libhwbpfix.so"), "{mapping}");
        let done = shlib.command("go 4").unwrap();
        assert_eq!(done.number("value").unwrap(), 11);
        assert_eq!(shlib.finish().unwrap().code(), Some(0));
    }

    #[test]
    fn kread_reads_through_the_kernel() {
        let mut kread = Fixture::spawn(KREAD, &[]).unwrap();
        assert_eq!(kread.ready().number("size").unwrap(), 64);
        let done = kread.command("go 3").unwrap();
        assert_eq!(done.number("bytes").unwrap(), 90);
        assert_eq!(kread.finish().unwrap().code(), Some(0));
    }

    #[test]
    fn bad_command_exits_two() {
        let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
        writer.send("jump").unwrap();
        let line = writer.read_line().unwrap();
        assert!(line.starts_with("error unknown command 'jump'"), "{line}");
        assert_eq!(writer.finish().unwrap().code(), Some(2));
    }
}
