//! [`UserStack`]: the user registers and the top of the user stack at a hit, as the BPF handler
//! (`bpf_probe_read_user` from `sp`), a perf sample (`PERF_SAMPLE_REGS_USER |
//! PERF_SAMPLE_STACK_USER`, `perf_output_sample_ustack` in `kernel/events/core.c`) or a
//! stopped thread (`PTRACE_GETREGS` + `process_vm_readv`) captured them, for unwinding with the
//! unwind tables afterwards (perf's `--call-graph dwarf`).

/// The registers an unwinder needs and the stack bytes from `sp` upwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserStack {
    /// The user instruction pointer.
    pub ip: u64,
    /// The user stack pointer: the address of `bytes[0]`.
    pub sp: u64,
    /// The user frame pointer (`rbp`), for code without unwind tables.
    pub bp: u64,
    /// The stack from `sp` up, as much as was copied (bounded by the capture size and by the
    /// top of the stack).
    pub bytes: Vec<u8>,
}

/// The highest stack address the main thread's frames of process `pid` reach: its stack pointer
/// at process entry, where the kernel put `argc` (`mm->start_stack`, set after
/// `create_elf_tables` in `fs/binfmt_elf.c`, field 28 `startstack` of `/proc/PID/stat`, filled
/// in `do_task_stat` in `fs/proc/array.c`). Every frame of the main thread lies below it (its
/// outermost, `_start`, was entered there); above it are only argv, the environment and the
/// auxiliary vector, which no unwinder reads. `None` when unknown (the process is gone, or the
/// kernel hides the field: it reads as 0 without ptrace access to the process).
pub fn main_thread_frames_top(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and ')', so the fields after the last ')'
    // start at field 3 (state); startstack is field 28.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let top: u64 = after_comm.split_whitespace().nth(25)?.parse().ok()?;
    (top != 0).then_some(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own process: its entry stack pointer lies inside its `[stack]` mapping,
    /// below argv and the environment.
    #[test]
    fn the_main_threads_frames_top_lies_in_its_stack_mapping_below_argv() {
        let pid = std::process::id() as i32;
        let top = main_thread_frames_top(pid).expect("startstack of this process");
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let stack = maps.lines().find(|l| l.ends_with("[stack]")).unwrap();
        let range = stack.split_whitespace().next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        assert!(start < top && top < end, "{top:#x} not in {range}");
        // argv, the environment and the auxiliary vector lie above it.
        let argv0 = std::env::args_os().next().unwrap();
        assert!(end - top > argv0.len() as u64, "{top:#x} {range}");
    }
}
