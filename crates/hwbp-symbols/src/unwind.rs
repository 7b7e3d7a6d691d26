//! Callchains from the unwind tables: [`StackUnwinder`] turns the user registers and stack
//! bytes captured at a hit into return addresses, with each mapped image's DWARF CFI
//! (`.eh_frame` through `.eh_frame_hdr`, else `.debug_frame`, also from the separate debug
//! file), as `perf record --call-graph dwarf` does afterwards in `perf report`/`perf script`.
//!
//! The unwinding itself is framehop's (the unwinder samply uses): it recovers only `rip`, `rsp`
//! and `rbp` per frame, caches the rule found per address, and falls back to frame pointers
//! where an image has no unwind entry. Stack memory comes from the caller: the bytes copied at
//! the trap (which bound how far the chain goes) or live reads of a stopped thread.
//!
//! The modules are the process's mapped ELF images ([`ProcessSymbols::modules`]); an address
//! outside all of them (a library `dlopen`ed later) re-reads the maps, at most once a second.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection};

use crate::debuglink::{find_debug_file, DebugSearch};
use crate::{ModuleInfo, ProcessSymbols};

/// Frames at most in one chain (perf's default `kernel.perf_event_max_stack` is 127).
pub const MAX_FRAMES: usize = 127;

/// How often an address outside every known module may re-read the maps.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The registers the unwinder starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartRegs {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer (`rbp`).
    pub bp: u64,
}

/// A chain unwound from the stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unwound {
    /// The ip, then the return addresses, innermost first.
    pub frames: Vec<u64>,
    /// Why unwinding stopped before the outermost frame (`_start`, a thread's start), if it did:
    /// the chain ends there, with this said instead of a made-up frame.
    pub stopped: Option<String>,
}

/// One process's unwinder: its modules' unwind sections, framehop's rule cache.
struct ProcessUnwinder {
    symbols: Arc<ProcessSymbols>,
    unwinder: UnwinderX86_64<Vec<u8>>,
    cache: CacheX86_64,
    /// Start addresses of the modules added, sorted, with their ends.
    ranges: Vec<Range<u64>>,
    refreshed: Instant,
}

impl ProcessUnwinder {
    fn new(symbols: Arc<ProcessSymbols>) -> ProcessUnwinder {
        let mut unwinder = ProcessUnwinder {
            symbols,
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            ranges: Vec::new(),
            refreshed: Instant::now(),
        };
        unwinder.add_new_modules();
        unwinder
    }

    fn add_new_modules(&mut self) {
        for info in self.symbols.modules() {
            let range = info.span.0..info.span.1;
            if self.ranges.contains(&range) {
                continue;
            }
            if let Some(module) = framehop_module(&info) {
                self.unwinder.add_module(module);
            }
            self.ranges.push(range);
        }
        self.ranges.sort_by_key(|r| r.start);
    }

    fn knows(&self, addr: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.start <= addr);
        i > 0 && addr < self.ranges[i - 1].end
    }

    /// A library mapped since the snapshot: re-read the maps (rate-limited) and add it.
    fn follow_new_code(&mut self, addr: u64) {
        if self.knows(addr) || self.refreshed.elapsed() < REFRESH_EVERY {
            return;
        }
        self.refreshed = Instant::now();
        if self.symbols.refresh().is_ok() {
            self.add_new_modules();
        }
    }

    fn unwind(&mut self, regs: StartRegs, read: &mut dyn FnMut(u64) -> Result<u64, ()>) -> Unwound {
        self.follow_new_code(regs.ip);
        let mut frames = Vec::with_capacity(16);
        let mut stopped = None;
        let mut read_stack = |addr: u64| read(addr);
        let mut iter = self.unwinder.iter_frames(
            regs.ip,
            UnwindRegsX86_64::new(regs.ip, regs.sp, regs.bp),
            &mut self.cache,
            &mut read_stack,
        );
        loop {
            match iter.next() {
                Ok(Some(frame)) => {
                    if frames.len() == MAX_FRAMES {
                        stopped = Some(format!("more than {MAX_FRAMES} frames"));
                        break;
                    }
                    frames.push(match frame {
                        FrameAddress::InstructionPointer(ip) => ip,
                        FrameAddress::ReturnAddress(ra) => ra.get(),
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    stopped = Some(e.to_string());
                    break;
                }
            }
        }
        // A frame in code mapped after the snapshot: the next hit there unwinds through it.
        if let Some(&last) = frames.last() {
            if stopped.is_some() {
                self.follow_new_code(last);
            }
        }
        Unwound { frames, stopped }
    }
}

/// The unwind sections of one mapped image, for framehop; the separate debug file's
/// `.debug_frame` when the image has neither `.eh_frame` nor `.debug_frame`.
fn framehop_module(info: &ModuleInfo) -> Option<Module<Vec<u8>>> {
    let data = std::fs::read(&info.path).ok()?;
    let file = object::File::parse(data.as_slice()).ok()?;
    let range = |name: &str| {
        file.section_by_name(name)
            .map(|s| s.address()..s.address() + s.size())
    };
    let bytes = |name: &str| {
        file.section_by_name(name)
            .and_then(|s| s.uncompressed_data().ok())
            .map(|d| d.into_owned())
    };
    let mut section_info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: range(".text"),
        got_svma: range(".got"),
        eh_frame_svma: range(".eh_frame"),
        eh_frame: bytes(".eh_frame"),
        eh_frame_hdr_svma: range(".eh_frame_hdr"),
        eh_frame_hdr: bytes(".eh_frame_hdr"),
        debug_frame: bytes(".debug_frame"),
        ..Default::default()
    };
    if section_info.eh_frame.is_none() && section_info.debug_frame.is_none() {
        section_info.debug_frame = debug_file_frame(&info.path, &data);
    }
    Some(Module::new(
        info.path.to_string_lossy().into_owned(),
        info.span.0..info.span.1,
        info.bias,
        section_info,
    ))
}

fn debug_file_frame(elf: &Path, data: &[u8]) -> Option<Vec<u8>> {
    let found = find_debug_file(elf, data, &DebugSearch::default())?;
    let debug = std::fs::read(found.path).ok()?;
    let file = object::File::parse(debug.as_slice()).ok()?;
    let section = file.section_by_name(".debug_frame")?;
    Some(section.uncompressed_data().ok()?.into_owned())
}

/// Unwinds hits of any process: one `ProcessUnwinder` per process, built when first needed
/// (the target's from its symbols, others loaded from `/proc`).
#[derive(Default)]
pub struct StackUnwinder {
    target: Option<(i32, Arc<ProcessSymbols>)>,
    processes: HashMap<i32, Option<ProcessUnwinder>>,
}

impl std::fmt::Debug for StackUnwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackUnwinder")
            .field("processes", &self.processes.len())
            .finish()
    }
}

impl StackUnwinder {
    /// An unwinder that uses `target`'s symbols (already loaded) for its process.
    pub fn new(target: Option<(i32, Arc<ProcessSymbols>)>) -> StackUnwinder {
        StackUnwinder {
            target,
            processes: HashMap::new(),
        }
    }

    fn process(&mut self, pid: i32) -> Option<&mut ProcessUnwinder> {
        let target = self.target.clone();
        self.processes
            .entry(pid)
            .or_insert_with(|| {
                let symbols = match target {
                    Some((target_pid, symbols)) if target_pid == pid => symbols,
                    _ => Arc::new(ProcessSymbols::load(u32::try_from(pid).ok()?).ok()?),
                };
                Some(ProcessUnwinder::new(symbols))
            })
            .as_mut()
    }

    /// Unwinds from `regs` over `stack`, the bytes from `regs.sp` up as captured at the hit.
    pub fn unwind_captured(&mut self, pid: i32, regs: StartRegs, stack: &[u8]) -> Unwound {
        let sp = regs.sp;
        self.unwind_with(pid, regs, &mut |addr| {
            let at = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
            let word = stack.get(at..at.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_le_bytes(word.try_into().map_err(|_| ())?))
        })
    }

    /// Unwinds from `regs`, reading the stack through `read` (a stopped thread's memory).
    pub fn unwind_with(
        &mut self,
        pid: i32,
        regs: StartRegs,
        read: &mut dyn FnMut(u64) -> Result<u64, ()>,
    ) -> Unwound {
        match self.process(pid) {
            Some(process) => process.unwind(regs, read),
            None => Unwound {
                frames: vec![regs.ip],
                stopped: Some(format!("no symbols for process {pid}")),
            },
        }
    }
}
