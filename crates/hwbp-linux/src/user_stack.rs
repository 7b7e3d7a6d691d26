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
