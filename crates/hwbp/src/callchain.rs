//! The user frames of a stopped thread's hit (stop mode): with [`CallGraph::Dwarf`], the
//! thread's registers and the top of its stack (`process_vm_readv` from `sp`, at most the
//! configured bytes, as the perf and BPF paths copy them at the trap) unwound with the unwind
//! tables ([`StackUnwinder`]); with [`CallGraph::FramePointers`], the `rbp` walk.

use hwbp_linux::ptrace::StopTracer;
use hwbp_symbols::unwind::{StackUnwinder, StartRegs};

use crate::options::CallGraph;

/// Return addresses of the stopped thread (outermost last, the ip itself not included), and
/// why unwinding stopped before the outermost frame, if it did.
pub(crate) fn stopped_return_addresses(
    tracer: &StopTracer,
    unwinder: &mut StackUnwinder,
    call_graph: CallGraph,
    pid: i32,
    regs: StartRegs,
    max_frames: usize,
) -> (Vec<u64>, Option<String>) {
    match call_graph {
        CallGraph::FramePointers => (tracer.frame_pointer_backtrace(regs.bp, max_frames), None),
        CallGraph::Dwarf { stack_bytes } => {
            let mut stack = vec![0u8; stack_bytes as usize];
            let copied = tracer.read_memory(regs.sp, &mut stack).unwrap_or(0);
            stack.truncate(copied);
            let mut unwound = unwinder.unwind_captured(pid, regs, &stack);
            if !unwound.frames.is_empty() {
                unwound.frames.remove(0);
            }
            (unwound.frames, unwound.stopped)
        }
    }
}
