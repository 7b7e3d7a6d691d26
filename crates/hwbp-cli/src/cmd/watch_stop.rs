//! `hwbp watch --stop`: stop mode through the ptrace debug registers
//! ([`hwbp_linux::ptrace::StopTracer`]).
//!
//! Every thread of the target is armed with the same DR0-3/DR7, allocated by
//! [`hwbp_core::debugreg_alloc`] (identical pieces share a register, long or unaligned regions
//! are split). At each hit the accessing thread is stopped, so the new value read then is
//! exactly what the access left, and the old value is the one kept from the previous stop (or
//! from arming): both are exact, unlike perf-event mode where the value is read later.
//! `--changes-only` drops hits that did not change the value (gdb's `watch`), `--if` tests the
//! new value. At the end (Ctrl-C, `--duration`, `--max-hits`, an error) every thread gets its
//! previous debug registers back and runs on.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hwbp_core::arch::x86::X86Type;
use hwbp_core::debugreg_alloc::{AllocatedWatch, DebugRegisterAllocator};
use hwbp_core::Access;
use hwbp_linux::ptrace::{DebugRegisterSet, StopEvent, StopTracer};
use hwbp_linux::{memory, target};
use hwbp_symbols::{CodeLocation, ProcessSymbols};

use crate::args::WatchArgs;
use crate::exit::usage;
use crate::output::{write_json_line, HitReport, Summary, WatchTotals};
use crate::plan::{plan, PlannedTarget};
use crate::runner::{install_stop_handler, STOP_REQUESTED};

/// Frames walked for `-g`.
const MAX_FRAMES: usize = 64;

/// `--if EXPR`: a test on the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `==N`
    Equal(u64),
    /// `!=N`
    NotEqual(u64),
    /// `<N` (unsigned)
    Less(u64),
    /// `>N` (unsigned)
    Greater(u64),
    /// `&MASK`: some bit of MASK set.
    AnyBit(u64),
}

impl Condition {
    /// Parses `==N`, `!=N`, `<N`, `>N` or `&MASK` (N decimal, `0x` hex or negative decimal).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let (make, rest): (fn(u64) -> Condition, &str) = if let Some(rest) = text.strip_prefix("==")
        {
            (Condition::Equal, rest)
        } else if let Some(rest) = text.strip_prefix("!=") {
            (Condition::NotEqual, rest)
        } else if let Some(rest) = text.strip_prefix('<') {
            (Condition::Less, rest)
        } else if let Some(rest) = text.strip_prefix('>') {
            (Condition::Greater, rest)
        } else if let Some(rest) = text.strip_prefix('&') {
            (Condition::AnyBit, rest)
        } else {
            return Err(usage(format!(
                "--if {text:?}: start with ==, !=, <, > or &, e.g. --if '==42' or --if '&0x80'"
            )));
        };
        let rest = rest.trim();
        let number = match rest.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => rest
                .parse::<u64>()
                .ok()
                .or_else(|| rest.parse::<i64>().ok().map(|n| n as u64)),
        };
        number.map(make).ok_or_else(|| {
            usage(format!(
                "--if {text:?}: {rest:?} is not a number: use decimal or 0x hex"
            ))
        })
    }

    /// Whether `value` satisfies the condition.
    pub fn holds(self, value: u64) -> bool {
        match self {
            Condition::Equal(n) => value == n,
            Condition::NotEqual(n) => value != n,
            Condition::Less(n) => value < n,
            Condition::Greater(n) => value > n,
            Condition::AnyBit(mask) => value & mask != 0,
        }
    }
}

/// One planned watch with its registers and value cache.
struct StopWatch {
    label: String,
    addr: u64,
    len: u64,
    access: Access,
    slot_mask: u8,
    /// The value as last seen (at arming or the previous hit), `None` for regions over 8 bytes.
    last_value: Option<u64>,
    hits: u64,
    reported: u64,
}

/// What a plain `mov` store wrote, computable from the registers at the stop: exact even when
/// another thread writes the same place before the stop is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DecodedStore {
    /// The stored value: a register (index in encoding order, bit shift for `ah`..`bh`) or an
    /// immediate.
    source: StoreSource,
    /// Bytes stored.
    bytes: u64,
    /// The destination address: base register, index register and scale, displacement
    /// (absolute for `rip`-relative operands).
    base: Option<usize>,
    index: Option<(usize, u32)>,
    displacement: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreSource {
    Register { index: usize, shift: u32 },
    Immediate(u64),
}

/// A general-purpose register as (index in encoding order, bit shift, bytes).
fn gpr(register: iced_x86::Register) -> Option<(usize, u32, u64)> {
    let r = register as usize;
    match r {
        1..=4 => Some((r - 1, 0, 1)),
        5..=8 => Some((r - 5, 8, 1)),
        9..=20 => Some((r - 9 + 4, 0, 1)),
        21..=36 => Some((r - 21, 0, 2)),
        37..=52 => Some((r - 37, 0, 4)),
        53..=68 => Some((r - 53, 0, 8)),
        _ => None,
    }
}

/// Decodes the instruction at `address` (`code` holds its bytes); `Some` for a `mov` to memory
/// from a register or an immediate, without an `fs`/`gs` segment.
fn decode_store(address: u64, code: &[u8]) -> Option<DecodedStore> {
    use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic, OpKind, Register};
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let instruction = decoder.decode();
    if instruction.is_invalid()
        || instruction.mnemonic() != Mnemonic::Mov
        || instruction.op_kind(0) != OpKind::Memory
        || matches!(instruction.memory_segment(), Register::FS | Register::GS)
    {
        return None;
    }
    let (source, bytes) = match instruction.op_kind(1) {
        OpKind::Register => {
            let (index, shift, bytes) = gpr(instruction.op_register(1))?;
            (StoreSource::Register { index, shift }, bytes)
        }
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate32to64 => {
            let bytes = match instruction.code() {
                Code::Mov_rm8_imm8 => 1,
                Code::Mov_rm16_imm16 => 2,
                Code::Mov_rm32_imm32 => 4,
                Code::Mov_rm64_imm32 => 8,
                _ => return None,
            };
            (StoreSource::Immediate(instruction.immediate(1)), bytes)
        }
        _ => return None,
    };
    let (base, displacement) = match instruction.memory_base() {
        Register::RIP => (None, instruction.memory_displacement64()),
        Register::None => (None, instruction.memory_displacement64()),
        other => (
            Some(gpr(other).filter(|g| g.2 == 8)?.0),
            instruction.memory_displacement64(),
        ),
    };
    let index = match instruction.memory_index() {
        Register::None => None,
        other => Some((
            gpr(other).filter(|g| g.2 == 8)?.0,
            instruction.memory_index_scale(),
        )),
    };
    Some(DecodedStore {
        source,
        bytes,
        base,
        index,
        displacement,
    })
}

impl DecodedStore {
    /// The value stored at `addr` (`len` bytes), if this store wrote exactly that.
    fn value_at(&self, registers: &[u64; 16], addr: u64, len: u64) -> Option<u64> {
        let mut target = self.displacement;
        if let Some(base) = self.base {
            target = target.wrapping_add(registers[base]);
        }
        if let Some((index, scale)) = self.index {
            target = target.wrapping_add(registers[index].wrapping_mul(u64::from(scale)));
        }
        if target != addr || self.bytes != len {
            return None;
        }
        let raw = match self.source {
            StoreSource::Register { index, shift } => registers[index] >> shift,
            StoreSource::Immediate(value) => value,
        };
        Some(if len == 8 {
            raw
        } else {
            raw & ((1u64 << (8 * len)) - 1)
        })
    }
}

/// Symbolization cached per instruction pointer.
struct CodeCache {
    pid: i32,
    symbols: Option<ProcessSymbols>,
    code: HashMap<u64, (Option<u64>, Option<CodeLocation>)>,
    stores: HashMap<u64, Option<DecodedStore>>,
    frames: HashMap<u64, String>,
    comms: HashMap<i32, String>,
}

impl CodeCache {
    fn code(&mut self, ip: u64, execute: bool) -> (Option<u64>, Option<CodeLocation>) {
        if let Some(hit) = self.code.get(&ip) {
            return hit.clone();
        }
        let pid = self.pid;
        let info = match &self.symbols {
            // An execute breakpoint is a fault: the IP is the instruction itself.
            Some(symbols) if execute => (Some(ip), symbols.symbolize(ip)),
            Some(symbols) => {
                let instruction = symbols.accessing_instruction(ip, |addr, len| {
                    let mut buf = vec![0u8; len];
                    memory::read_memory(pid, addr, &mut buf).ok().map(|_| buf)
                });
                let location = symbols.symbolize(instruction.unwrap_or(ip.wrapping_sub(1)));
                (instruction, location)
            }
            None => (None, None),
        };
        self.code.insert(ip, info.clone());
        info
    }

    /// The store that trapped at `ip`, decoded once per IP.
    fn store(&mut self, ip: u64) -> Option<DecodedStore> {
        if let Some(store) = self.stores.get(&ip) {
            return *store;
        }
        let decoded = self.code(ip, false).0.and_then(|instruction| {
            let mut bytes = vec![0u8; usize::try_from(ip - instruction).ok()?];
            memory::read_memory(self.pid, instruction, &mut bytes).ok()?;
            decode_store(instruction, &bytes)
        });
        self.stores.insert(ip, decoded);
        decoded
    }

    fn frame(&mut self, addr: u64) -> String {
        if let Some(f) = self.frames.get(&addr) {
            return f.clone();
        }
        let text = match self
            .symbols
            .as_ref()
            .and_then(|s| s.symbolize(addr.wrapping_sub(1)))
        {
            Some(loc) => format!("{addr:#x} {loc}"),
            None => format!("{addr:#x}"),
        };
        self.frames.insert(addr, text.clone());
        text
    }

    fn comm(&mut self, tid: i32) -> String {
        let pid = self.pid;
        self.comms
            .entry(tid)
            .or_insert_with(|| target::thread_comm(pid, tid).unwrap_or_else(|_| "?".into()))
            .clone()
    }
}

fn x86_type(label: &str, access: Access) -> anyhow::Result<X86Type> {
    match access {
        Access::Write => Ok(X86Type::Write),
        Access::ReadWrite => Ok(X86Type::ReadWrite),
        Access::Execute => Ok(X86Type::Execute),
        Access::Read => Err(usage(format!(
            "watch '{label}': x86 debug registers cannot watch reads alone: use :rw"
        ))),
    }
}

/// Runs `hwbp watch --stop`.
pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if common.target.all_cpus || common.target.cpus.is_some() {
        return Err(usage(
            "--stop stops threads of one process: give -p PID, -t TID or -- CMD, not -a/-C",
        ));
    }
    let condition = args
        .condition
        .as_deref()
        .map(Condition::parse)
        .transpose()?;
    let mut plan = plan(common)?;

    let mut allocator = DebugRegisterAllocator::new();
    let mut watches = Vec::new();
    for w in &plan.watches {
        if w.kernel_address {
            return Err(usage(format!(
                "watch '{}': {:#x} is a kernel address; ptrace debug registers watch user \
                 space only: drop --stop to use perf-event mode",
                w.label, w.addr
            )));
        }
        let ty = x86_type(&w.label, w.access)?;
        let len = if ty == X86Type::Execute { 1 } else { w.len };
        let allocated: AllocatedWatch = allocator
            .allocate(w.addr, len, ty)
            .map_err(|e| usage(format!("watch '{}': {e}", w.label)))?;
        watches.push(StopWatch {
            label: w.label.clone(),
            addr: w.addr,
            len,
            access: w.access,
            slot_mask: allocated.slot_mask(),
            last_value: None,
            hits: 0,
            reported: 0,
        });
    }
    let registers = DebugRegisterSet {
        addresses: allocator.addresses(),
        dr7: allocator.dr7(),
    };

    let PlannedTarget::Threads {
        pid,
        tids,
        launched,
    } = std::mem::replace(&mut plan.target, PlannedTarget::Cpus(Vec::new()))
    else {
        unreachable!("CPU targets were refused above");
    };
    let is_launched = launched.is_some();
    for w in &mut watches {
        if w.access != Access::Execute && w.len <= 8 {
            w.last_value = memory::read_value(pid, w.addr, w.len as usize).ok();
        }
    }
    install_stop_handler();
    let mut tracer = match launched {
        Some(launched) => {
            let pid = launched
                .into_traced()
                .context("cannot keep tracing the launched command")?;
            StopTracer::adopt_launched(pid, registers)
        }
        None => StopTracer::attach(pid, &tids, registers),
    }
    .with_context(|| format!("cannot arm the stop-mode watch in process {pid}"))?;
    let armed_at = Instant::now();
    eprintln!(
        "hwbp: watching {} watchpoint{} on {} in stop mode ({} thread{}); Ctrl-C to stop",
        watches.len(),
        if watches.len() == 1 { "" } else { "s" },
        if is_launched {
            format!("the command (pid {pid})")
        } else {
            format!("process {pid}")
        },
        tracer.threads().len(),
        if tracer.threads().len() == 1 { "" } else { "s" },
    );

    // Ctrl-C and --duration wake the tracer out of waitpid.
    let done = Arc::new(AtomicBool::new(false));
    let waker = tracer.waker();
    let deadline = common.duration.map(Duration::from_secs_f64);
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
                if STOP_REQUESTED.load(Ordering::SeqCst)
                    || deadline.is_some_and(|d| armed_at.elapsed() >= d)
                {
                    waker.wake();
                }
            }
        })
    };

    let stdout = std::io::stdout();
    let flush_each = stdout.is_terminal();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut cache = CodeCache {
        pid,
        symbols: plan.symbols.take(),
        code: HashMap::new(),
        stores: HashMap::new(),
        frames: HashMap::new(),
        comms: HashMap::new(),
    };
    let mut total_reported = 0u64;
    let result: anyhow::Result<String> = (|| loop {
        if STOP_REQUESTED.load(Ordering::SeqCst) {
            return Ok("interrupted".to_owned());
        }
        if deadline.is_some_and(|d| armed_at.elapsed() >= d) {
            return Ok("duration elapsed".to_owned());
        }
        if args.max_hits.is_some_and(|m| total_reported >= m) {
            return Ok("max hits reached".to_owned());
        }
        match tracer.next_event()? {
            StopEvent::Hit {
                tid,
                slots,
                ip,
                frame_pointer,
                registers,
                ..
            } => {
                let time_ns = armed_at.elapsed().as_nanos() as u64;
                // With one thread nothing can write between the trap and the read. With more,
                // another thread may store to the same place before this stop is handled,
                // so the value comes from the decoded store when it is a plain `mov`.
                let single_thread = tracer.thread_count() == 1;
                let store = if single_thread { None } else { cache.store(ip) };
                let mut exact = single_thread;
                // Values first, while the thread is stopped: exact.
                let mut hit_watches = Vec::new();
                for (index, w) in watches.iter_mut().enumerate() {
                    if w.slot_mask & slots == 0 {
                        continue;
                    }
                    let decoded = store.and_then(|st| st.value_at(&registers, w.addr, w.len));
                    exact |= decoded.is_some();
                    let after = if decoded.is_some() {
                        decoded
                    } else if w.access != Access::Execute && w.len <= 8 {
                        memory::read_value(pid, w.addr, w.len as usize).ok()
                    } else {
                        None
                    };
                    let before = w.last_value;
                    if after.is_some() {
                        w.last_value = after;
                    }
                    w.hits += 1;
                    hit_watches.push((index, before, after));
                }
                let callchain_addrs = if args.callchain {
                    let mut frames = vec![ip];
                    frames.extend(tracer.frame_pointer_backtrace(frame_pointer, MAX_FRAMES));
                    frames
                } else {
                    Vec::new()
                };
                tracer.resume(tid)?;
                for (index, before, after) in hit_watches {
                    if args.max_hits.is_some_and(|m| total_reported >= m) {
                        break;
                    }
                    let w = &mut watches[index];
                    if args.changes_only && before.is_some() && before == after {
                        continue;
                    }
                    if let Some(c) = condition {
                        if !after.is_some_and(|v| c.holds(v)) {
                            continue;
                        }
                    }
                    w.reported += 1;
                    total_reported += 1;
                    let execute = w.access == Access::Execute;
                    let (instruction, location) = cache.code(ip, execute);
                    let callchain = callchain_addrs
                        .iter()
                        .enumerate()
                        .map(|(i, a)| {
                            if i == 0 {
                                match &location {
                                    Some(loc) => format!("{:#x} {loc}", instruction.unwrap_or(*a)),
                                    None => format!("{a:#x}"),
                                }
                            } else {
                                cache.frame(*a)
                            }
                        })
                        .collect();
                    let report = HitReport {
                        kind: "hit",
                        time_ns,
                        // Stop mode does not learn the CPU; the JSON omits it.
                        cpu: 0,
                        pid,
                        tid,
                        comm: cache.comm(tid),
                        watch: w.label.clone(),
                        address: format!("{:#x}", w.addr),
                        field: None,
                        access: w.access.letters(),
                        kernel: false,
                        ip: format!("{ip:#x}"),
                        instruction: instruction.map(|i| format!("{i:#x}")),
                        function: location.as_ref().map(|l| l.function.clone()),
                        offset: location.as_ref().map(|l| l.offset),
                        file: location.as_ref().and_then(|l| l.file.clone()),
                        line: location.as_ref().and_then(|l| l.line),
                        value_after: after,
                        value_before: before,
                        callchain,
                    };
                    if common.json {
                        let mut value = serde_json::to_value(&report)?;
                        if let Some(map) = value.as_object_mut() {
                            map.remove("cpu");
                            map.insert("exact".into(), serde_json::Value::Bool(exact));
                        }
                        write_json_line(&mut out, &value)?;
                    } else {
                        write_text(&mut out, &report, exact)?;
                    }
                    if flush_each {
                        out.flush()?;
                    }
                }
            }
            StopEvent::Exited(exit) => {
                return Ok(if is_launched {
                    format!("the command {exit}")
                } else {
                    format!("the target {exit}")
                });
            }
            StopEvent::Exec => {
                return Ok(
                    "the target exec'd another program (its watch addresses are gone)".into(),
                )
            }
            StopEvent::ThreadStarted { .. }
            | StopEvent::ThreadExited { .. }
            | StopEvent::Interrupted => {}
            StopEvent::StrayTrap { .. } => {}
        }
    })();
    done.store(true, Ordering::SeqCst);
    // Put every thread's registers back and let it run, whatever ended the loop.
    let detached = tracer.detach();
    let _ = watcher.join();
    let ended_by = result?;
    detached.context("cannot restore the target's debug registers and detach")?;

    let summary = Summary {
        kind: "summary",
        watchpoints: watches
            .iter()
            .map(|w| WatchTotals {
                watch: w.label.clone(),
                address: format!("{:#x}", w.addr),
                len: w.len,
                hits: w.hits,
                reported: w.reported,
                lost: 0,
                placement: "pinned",
                hits_seen: None,
                coverage: None,
                estimate: None,
            })
            .collect(),
        lost_records: 0,
        throttled: 0,
        duration_s: armed_at.elapsed().as_secs_f64(),
        ended_by,
    };
    if common.json {
        write_json_line(&mut out, &summary)?;
    } else {
        summary.write_text(&mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// One hit as a text line: the values (marked `(read after)` when another thread could have
/// written in between), no CPU.
fn write_text(out: &mut impl Write, hit: &HitReport, exact: bool) -> std::io::Result<()> {
    let secs = hit.time_ns as f64 / 1e9;
    write!(
        out,
        "{secs:12.6} {}/{} {:<15} {} {} by {}",
        hit.pid,
        hit.tid,
        hit.comm,
        hit.access,
        hit.watch,
        hit.location()
    )?;
    match (hit.value_before, hit.value_after) {
        (Some(before), Some(after)) => write!(out, "  {before} -> {after}")?,
        (None, Some(after)) => write!(out, "  -> {after}")?,
        _ => {}
    }
    if !exact && hit.value_after.is_some() {
        write!(out, " (read after: other threads run)")?;
    }
    writeln!(out)?;
    for frame in &hit.callchain {
        writeln!(out, "{:16}{frame}", "")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mov_stores_are_decoded_to_their_value() {
        let mut registers = [0u64; 16];
        registers[0] = 0x1122_3344_5566_7788; // rax
        registers[3] = 0x1000; // rbx
                               // mov %rax, 0x10(%rbx)
        let store = decode_store(0x400000, &[0x48, 0x89, 0x43, 0x10]).unwrap();
        assert_eq!(
            store.value_at(&registers, 0x1010, 8),
            Some(0x1122_3344_5566_7788)
        );
        assert_eq!(store.value_at(&registers, 0x1018, 8), None);
        assert_eq!(store.value_at(&registers, 0x1010, 4), None);
        // mov %ah, (%rbx)
        let store = decode_store(0x400000, &[0x88, 0x23]).unwrap();
        assert_eq!(store.value_at(&registers, 0x1000, 1), Some(0x77));
        // movq $-2, 0x2000(%rip): absolute 0x400000 + 11 + 0x2000
        let store = decode_store(
            0x400000,
            &[
                0x48, 0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff,
            ],
        )
        .unwrap();
        assert_eq!(store.value_at(&registers, 0x40200b, 8), Some(u64::MAX - 1));
        // movl $7, (%rbx)
        let store = decode_store(0x400000, &[0xc7, 0x03, 0x07, 0, 0, 0]).unwrap();
        assert_eq!(store.value_at(&registers, 0x1000, 4), Some(7));
        // add %rax, (%rbx) is not a plain store.
        assert_eq!(decode_store(0x400000, &[0x48, 0x01, 0x03]), None);
    }

    #[test]
    fn conditions_parse_and_test_the_new_value() {
        assert_eq!(Condition::parse("==42").unwrap(), Condition::Equal(42));
        assert_eq!(Condition::parse("!=0x10").unwrap(), Condition::NotEqual(16));
        assert_eq!(Condition::parse("<5").unwrap(), Condition::Less(5));
        assert_eq!(Condition::parse("> 7").unwrap(), Condition::Greater(7));
        assert_eq!(Condition::parse("&0x80").unwrap(), Condition::AnyBit(0x80));
        assert_eq!(
            Condition::parse("==-1").unwrap(),
            Condition::Equal(u64::MAX)
        );
        assert!(Condition::parse("=5").is_err());
        assert!(Condition::parse("==x").is_err());
        assert!(Condition::AnyBit(0x80).holds(0x81));
        assert!(!Condition::AnyBit(0x80).holds(0x7f));
        assert!(Condition::Less(5).holds(4) && !Condition::Less(5).holds(5));
        assert!(Condition::Greater(5).holds(6) && !Condition::Greater(5).holds(5));
    }
}
