//! [`SymbolCache`]: symbolization of hit addresses for every process and the kernel, cached
//! per (process, address), shared by hwbp's perf-event and stop modes.
//!
//! A hot watchpoint hits the same few instructions: each (pid, ip) is decoded and symbolized
//! once. User addresses go through [`ProcessSymbols`] (the accessing instruction before an x86
//! trap IP, then `function+off (file:line)`); kernel addresses through [`KernelSymbols`]
//! (`/proc/kallsyms` unless the caller gave a table). The cache works from ELF files and
//! snapshots, so it still names the code after the process has exited; reading live code bytes
//! (for code the ELF file does not hold) goes through the caller's [`CodeReader`], which keeps
//! this crate free of syscalls.

use std::collections::HashMap;

// Looked up once per hit: Fx hashing costs a few ns where the default SipHash cost ~40.
use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::{CodeLocation, KernelSymbols, ProcessSymbols};

/// Reads `len` bytes of process `pid` at `addr` (e.g. with `process_vm_readv`); `None` if the
/// memory cannot be read.
pub type CodeReader = Box<dyn Fn(i32, u64, usize) -> Option<Vec<u8>> + Send>;

/// The text frames of one callchain address (its inlined calls, then itself).
type Frames = Arc<[Arc<str>]>;

/// What the cache knows about one hit address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeInfo {
    /// The accessing instruction's address (before an x86 data trap's IP; the IP itself for an
    /// execute breakpoint), when it could be found.
    pub instruction: Option<u64>,
    /// Its function, offset and source line (user space).
    pub location: Option<CodeLocation>,
    /// The kernel function and offset (kernel mode).
    pub kernel_function: Option<(String, u64)>,
    /// For user code no symbol covers (a stripped library): the module and the link-time
    /// offset, printed `libc.so.6+0x27e66`.
    pub module_offset: Option<crate::process::ModuleOffset>,
}

impl CodeInfo {
    /// The function's name, user or kernel.
    pub fn function(&self) -> Option<&str> {
        match (&self.location, &self.kernel_function) {
            (Some(loc), _) => Some(&loc.function),
            (None, Some((name, _))) => Some(name),
            _ => None,
        }
    }

    /// The offset in [`function`](Self::function).
    pub fn offset(&self) -> Option<u64> {
        match (&self.location, &self.kernel_function) {
            (Some(loc), _) => Some(loc.offset),
            (None, Some((_, off))) => Some(*off),
            _ => None,
        }
    }
}

/// Symbolizes hit addresses; see the module docs. `Send`, so a watcher can run on a worker
/// thread.
pub struct SymbolCache {
    target_pid: Option<i32>,
    target_symbols: Option<Arc<ProcessSymbols>>,
    other_processes: HashMap<i32, Option<Arc<ProcessSymbols>>>,
    kernel: Option<Option<Arc<KernelSymbols>>>,
    code: FxHashMap<(i32, u64, bool), Arc<CodeInfo>>,
    frames: FxHashMap<(i32, u64, bool, bool), Frames>,
    read_code: CodeReader,
}

impl std::fmt::Debug for SymbolCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymbolCache")
            .field("target_pid", &self.target_pid)
            .field("cached", &self.code.len())
            .finish()
    }
}

impl SymbolCache {
    /// A cache for hits in `target` (its symbols already loaded, if any) and any other process
    /// (loaded when first seen); `kernel` is the kernel table to use (else `/proc/kallsyms`,
    /// read when first needed).
    pub fn new(
        target: Option<(i32, Arc<ProcessSymbols>)>,
        kernel: Option<Arc<KernelSymbols>>,
        read_code: CodeReader,
    ) -> SymbolCache {
        let (target_pid, target_symbols) = match target {
            Some((pid, symbols)) => (Some(pid), Some(symbols)),
            None => (None, None),
        };
        SymbolCache {
            target_pid,
            target_symbols,
            other_processes: HashMap::new(),
            kernel: kernel.map(Some),
            code: FxHashMap::default(),
            frames: FxHashMap::default(),
            read_code,
        }
    }

    fn kernel(&mut self) -> Option<Arc<KernelSymbols>> {
        self.kernel
            .get_or_insert_with(|| KernelSymbols::from_kallsyms().ok().map(Arc::new))
            .clone()
    }

    /// The symbols of process `pid` (the target's, or loaded once for another process).
    pub fn process(&mut self, pid: i32) -> Option<Arc<ProcessSymbols>> {
        if Some(pid) == self.target_pid {
            return self.target_symbols.clone();
        }
        self.other_processes
            .entry(pid)
            .or_insert_with(|| ProcessSymbols::load(pid as u32).ok().map(Arc::new))
            .clone()
    }

    /// The code at a hit: `ip` as the CPU reported it (after the access for an x86 data
    /// watchpoint, at the instruction for an `execute` breakpoint), in kernel or user mode.
    pub fn code(&mut self, pid: i32, ip: u64, kernel_mode: bool, execute: bool) -> Arc<CodeInfo> {
        let key = (pid, ip, execute);
        if let Some(info) = self.code.get(&key) {
            return Arc::clone(info);
        }
        let info = if kernel_mode {
            CodeInfo {
                kernel_function: self
                    .kernel()
                    .and_then(|k| k.symbolize(ip).map(|(n, off)| (n.to_string(), off))),
                ..CodeInfo::default()
            }
        } else {
            match self.process(pid) {
                Some(symbols) if execute => {
                    let location = symbols.symbolize(ip);
                    CodeInfo {
                        instruction: Some(ip),
                        module_offset: location
                            .is_none()
                            .then(|| symbols.module_offset(ip))
                            .flatten(),
                        location,
                        kernel_function: None,
                    }
                }
                Some(symbols) => {
                    let read = &self.read_code;
                    let instruction =
                        symbols.accessing_instruction(ip, |addr, len| read(pid, addr, len));
                    let at = instruction.unwrap_or(ip.wrapping_sub(1));
                    let location = symbols.symbolize(at);
                    CodeInfo {
                        instruction,
                        module_offset: location
                            .is_none()
                            .then(|| symbols.module_offset(at))
                            .flatten(),
                        location,
                        kernel_function: None,
                    }
                }
                None => CodeInfo::default(),
            }
        };
        let info = Arc::new(info);
        self.code.insert(key, Arc::clone(&info));
        info
    }

    /// The frames of one callchain address as text, appended to `out`: the functions inlined
    /// there (`0xADDR inner (file:line) (inlined)`, innermost first, as perf shows them), then
    /// `0xADDR function+off (file:line)`; `0xADDR libc.so.6+0x7e741` where no symbol covers
    /// it, or `0xADDR name+off [kernel]`; a bare address only outside every mapped image.
    /// `after` says `addr` follows the instruction to name (a return address, or the ip of an
    /// x86 data trap): it is symbolized at `addr - 1`; else at `addr` (an execute breakpoint's
    /// ip). Names come from the same symbolizer as [`code`](Self::code)'s, debug files
    /// included.
    pub fn push_frames(
        &mut self,
        pid: i32,
        addr: u64,
        kernel: bool,
        after: bool,
        out: &mut Vec<Arc<str>>,
    ) {
        let key = (pid, addr, kernel, after);
        if let Some(frames) = self.frames.get(&key) {
            out.extend(frames.iter().cloned());
            return;
        }
        let frames: Frames = if kernel {
            let text = match self.kernel().and_then(|k| {
                k.symbolize(addr)
                    .map(|(name, off)| format!("{addr:#x} {name}+{off:#x} [kernel]"))
            }) {
                Some(text) => text,
                None => format!("{addr:#x} [kernel]"),
            };
            Arc::from([Arc::from(text)])
        } else {
            let symbols = self.process(pid);
            let at = if after { addr.wrapping_sub(1) } else { addr };
            match symbols.as_ref().and_then(|s| s.symbolize_inlined(at)) {
                Some((location, inlined)) => inlined
                    .iter()
                    .map(|call| {
                        let line = match (&call.file, call.line) {
                            (Some(file), Some(line)) => format!(" ({file}:{line})"),
                            _ => String::new(),
                        };
                        Arc::from(format!("{addr:#x} {}{line} (inlined)", call.function))
                    })
                    .chain([Arc::from(format!("{addr:#x} {location}"))])
                    .collect(),
                None => {
                    let text = match symbols.and_then(|s| s.module_offset(at)) {
                        // The call's module and offset (perf's `dso+0x...`), as `code` names an
                        // accessing instruction no symbol covers.
                        Some(offset) => format!("{addr:#x} {offset}"),
                        None => format!("{addr:#x}"),
                    };
                    Arc::from([Arc::from(text)])
                }
            }
        };
        out.extend(frames.iter().cloned());
        self.frames.insert(key, frames);
    }

    /// The raw bytes of the instruction at `addr` up to `end` in process `pid` (for decoding
    /// a store), through the caller's reader.
    pub fn read_code(&self, pid: i32, addr: u64, len: usize) -> Option<Vec<u8>> {
        (self.read_code)(pid, addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn the_cache_can_move_to_a_worker_thread() {
        assert_send::<SymbolCache>();
    }

    #[test]
    fn an_unknown_process_gives_bare_addresses_once() {
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&reads);
        let mut cache = SymbolCache::new(
            None,
            None,
            Box::new(move |_, _, _| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                None
            }),
        );
        // pid_max is at most 2^22: no such process.
        let pid = 1 << 23;
        let mut frames = Vec::new();
        cache.push_frames(pid, 0x1234, false, true, &mut frames);
        assert_eq!(frames, [Arc::from("0x1234")]);
        let first = cache.code(pid, 0x1234, false, false);
        let again = cache.code(pid, 0x1234, false, false);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(*first, CodeInfo::default());
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
