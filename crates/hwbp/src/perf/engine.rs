//! How the perf-event watcher takes values and counts: the in-kernel BPF hit handler
//! ([`hwbp_linux::bpf`]) when this process may load it and the plan suits it, else perf samples
//! with the user registers (a plain `mov`'s value decoded from them) or the value read after.
//! [`choose_engine`] decides once at start and says why in a notice; see the engine section of
//! [`crate::perf`]'s docs for what each engine delivers.

use hwbp_core::Access;
use hwbp_linux::bpf::{
    self, BpfError, HandlerMode, HandlerPiece, HandlerSpec, HitHandler, PieceString, ValueFilter,
};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::{memory, target, user_stack};

use crate::error::{Error, Result};
use crate::options::WatchOptions;
use crate::plan::WatchPlan;
use crate::rotation::PiecePlacement;
use crate::values::StringKind;

/// The in-kernel handler in use, and how its pieces map to the plan's.
pub(crate) struct ActiveHandler {
    pub(crate) handler: HitHandler,
    /// Handler piece -> placement piece.
    pub(crate) to_piece: Vec<usize>,
}

impl ActiveHandler {
    /// A value chain's move of placement piece `piece` to `request`, before its breakpoint
    /// moves: the handler's program takes hits there as the piece's from now on, its previous
    /// value seeded with what process `pid` holds there now (the `old` of its first hit
    /// there; nothing to seed while the chain is unreadable). A piece the handler does not
    /// have is left alone.
    pub(crate) fn move_piece(
        &self,
        pid: i32,
        piece: usize,
        request: &WatchRequest,
    ) -> std::result::Result<(), BpfError> {
        let Some(h) = self.to_piece.iter().position(|p| *p == piece) else {
            return Ok(());
        };
        self.handler.move_piece(h, request.addr, request.len)?;
        if let Ok(len) = usize::try_from(request.len) {
            if let Ok(value) = memory::read_value(pid, request.addr, len) {
                self.handler.seed(h, value)?;
            }
        }
        Ok(())
    }

    /// Seeds the handler piece at `addr` with the value process `pid` holds there now.
    pub(crate) fn seed_from_memory(&self, pid: i32, addr: u64) {
        let spec = self.handler.spec();
        if let Some(h) = spec.pieces.iter().position(|p| p.addr == addr) {
            let piece = spec.pieces[h];
            if !piece.is_kernel() {
                if let Ok(value) = memory::read_value(pid, addr, piece.len as usize) {
                    let _ = self.handler.seed(h, value);
                }
            }
        }
    }
}

/// How values (and counts) are taken; see the module docs.
pub(crate) struct Engine {
    pub(crate) handler: Option<ActiveHandler>,
    /// Perf samples carry the user registers (the fallback's decoded stores).
    pub(crate) regs_user: bool,
    /// Per placement piece: its previous value was seeded at arming (else the handler's first
    /// `old` is not known).
    pub(crate) seeded: Vec<bool>,
    pub(crate) notice: Option<String>,
}

/// Why the handler is not used, in a few words for the notice.
fn handler_refusal(error: &BpfError) -> String {
    match error {
        BpfError::Permission { .. } => {
            "no BPF permission: needs root or CAP_BPF+CAP_PERFMON".to_string()
        }
        other => format!("the BPF hit handler cannot be used: {other}"),
    }
}

/// The string the handler reads at the trap for placed piece `p`: a `char *` watch's one
/// piece, or any piece of a Rust `&str` or `String` watch whose data pointer and length are
/// pieces of their own (their indices among the handler's pieces: the placement's without
/// execute pieces, which a string watch has none of).
fn trap_string(plan: &WatchPlan, placement: &PiecePlacement, p: usize) -> Option<PieceString> {
    let (watch, _) = placement.owner(p);
    let owner = &plan.watches[watch.index()];
    let request = &placement.pieces()[p];
    if request.len != 8 || HandlerPiece::new(request.addr, 8).is_kernel() {
        return None;
    }
    let piece_at = |addr: u64| {
        placement
            .pieces()
            .iter()
            .filter(|r| r.access != Access::Execute)
            .position(|r| r.addr == addr && r.len == 8)
    };
    match StringKind::of(owner.value_type.as_ref()?)? {
        StringKind::CPointer => (request.addr == owner.addr).then_some(PieceString::CString),
        StringKind::RustStr { data_ptr, length } => Some(PieceString::Counted {
            pointer: piece_at(owner.addr + data_ptr as u64)?,
            length: piece_at(owner.addr + length as u64)?,
        }),
    }
}

/// Builds, loads and seeds the handler for every data piece of the placement, or says why not
/// (`Err(Ok(why))`), or that the user's filter cannot be built (`Err(Err(bad input))`).
fn load_handler(
    plan: &WatchPlan,
    placement: &PiecePlacement,
    opts: &WatchOptions,
    seeded: &mut [bool],
) -> std::result::Result<ActiveHandler, std::result::Result<String, Error>> {
    if !opts.use_bpf {
        return Err(Ok("the BPF hit handler is turned off".to_string()));
    }
    let mut pieces = Vec::new();
    let mut to_piece = Vec::new();
    for (p, request) in placement.pieces().iter().enumerate() {
        if request.access == Access::Execute {
            continue;
        }
        if pieces.iter().any(|h: &HandlerPiece| h.addr == request.addr) {
            return Err(Ok(format!(
                "two watches on {:#x}: the BPF hit handler tells pieces apart by address",
                request.addr
            )));
        }
        let (watch, _) = placement.owner(p);
        let condition = match opts.condition {
            Some(condition) => match condition
                .for_watch(&plan.watches[watch.index()], request.len)
                .to_handler()
            {
                Some(kernel) => Some(kernel),
                None => {
                    return Err(Err(Error::bad_input(format!(
                        "--if on {}: the in-kernel filter compares integers and this value is \
                         floating point: add --stop to compare it as a float",
                        plan.watches[watch.index()].label
                    ))))
                }
            },
            None => None,
        };
        let mut piece =
            HandlerPiece::new(request.addr, request.len as u8).with_condition(condition);
        if let Some(string) = trap_string(plan, placement, p) {
            piece = piece.with_string(string);
        }
        if plan.watches[watch.index()].chain.is_some() {
            // A value chain moves its pieces when a pointer on the way changes.
            piece = piece.movable();
        }
        pieces.push(piece);
        to_piece.push(p);
    }
    if pieces.is_empty() {
        return Err(Ok("execute breakpoints have no value to read".to_string()));
    }
    if let Err(e) = bpf::available() {
        return Err(Ok(handler_refusal(&e)));
    }
    let mode = if opts.aggregate {
        HandlerMode::Count
    } else {
        HandlerMode::Emit {
            stack: opts.callchain,
        }
    };
    let mut spec = HandlerSpec::new(pieces, mode);
    // As many bytes as the perf rings it replaces (--ring-pages per CPU), a power of two.
    let cpus = target::online_cpus().map_or(1, |c| c.len().max(1));
    spec.ring_bytes = u32::try_from((opts.ring_pages * 4096 * cpus).next_power_of_two())
        .unwrap_or(1 << 30)
        .clamp(4096, 1 << 30);
    if opts.callchain && !opts.aggregate {
        spec.user_stack_bytes = opts.call_graph.stack_bytes();
        spec.main_stack_top = plan.target.pid().map_or(0, main_stack_top);
        // Room for 4,096 records of that size (32 MiB for 8 KiB stacks): a burst of hits the
        // reader has not reached yet.
        let per_record = spec.user_stack_bytes as usize + 1024;
        spec.ring_bytes = spec
            .ring_bytes
            .max(u32::try_from((per_record * 4096).next_power_of_two()).unwrap_or(1 << 30));
    }
    spec.wakeup_bytes = spec.wakeup_bytes.min(spec.ring_bytes / 2);
    spec.string_chars = opts.string_chars;
    spec.filter = ValueFilter {
        changes_only: opts.changes_only,
    };
    let handler = match HitHandler::load(&spec) {
        Ok(handler) => handler,
        Err(BpfError::Invalid(why)) if opts.condition.is_some() => {
            return Err(Err(Error::bad_input(format!(
                "--if: {why}: use a value the watched piece can hold"
            ))))
        }
        Err(e) => return Err(Ok(handler_refusal(&e))),
    };
    // The value each piece holds now: the `old` of its first hit.
    if let Some(pid) = plan.target.pid() {
        for (h, piece) in spec.pieces.iter().enumerate() {
            if piece.is_kernel() {
                continue;
            }
            if let Ok(value) = memory::read_value(pid, piece.addr, piece.len as usize) {
                if handler.seed(h, value).is_ok() {
                    seeded[to_piece[h]] = true;
                }
            }
        }
    }
    Ok(ActiveHandler { handler, to_piece })
}

/// Chooses the engine; refuses filters that need the handler when it cannot be used.
pub(crate) fn choose_engine(
    plan: &WatchPlan,
    placement: &PiecePlacement,
    opts: &WatchOptions,
) -> Result<Engine> {
    let mut seeded = vec![false; placement.pieces().len()];
    let filters = opts.changes_only || opts.condition.is_some();
    let data = plan.watches.iter().any(|w| w.access != Access::Execute);
    if filters && !data {
        return Err(Error::bad_input(
            "--changes-only and --if test the written value; execute breakpoints have none: \
             drop them, or watch a variable (:w)",
        ));
    }
    if !(opts.read_values || opts.aggregate || filters) || !data {
        return Ok(Engine {
            handler: None,
            regs_user: false,
            seeded,
            notice: None,
        });
    }
    let why_not = match load_handler(plan, placement, opts, &mut seeded) {
        Ok(handler) => {
            let notice = if opts.aggregate {
                "counts: per thread and instruction, in the kernel by hwbp's BPF hit handler; \
                 totals from the breakpoint counters"
            } else {
                "values: in-kernel BPF handler (exact)"
            };
            return Ok(Engine {
                handler: Some(handler),
                regs_user: false,
                seeded,
                notice: Some(notice.to_string()),
            });
        }
        Err(Err(bad_input)) => return Err(bad_input),
        Err(Ok(why)) => why,
    };
    if filters {
        return Err(Error::bad_input(format!(
            "--changes-only and --if without --stop are filtered by the in-kernel BPF handler, \
             which cannot be used ({why_not}): run as root, or add --stop"
        )));
    }
    let user_data = plan
        .watches
        .iter()
        .any(|w| !w.kernel_address && w.access != Access::Execute);
    let notice = if opts.read_values {
        format!("values: decoded from the trapping store, else read after ({why_not})")
    } else {
        format!("counts: per thread and function from perf samples ({why_not})")
    };
    Ok(Engine {
        handler: None,
        regs_user: opts.read_values && user_data,
        seeded,
        notice: Some(notice),
    })
}

/// Where a copy of the main thread's stack may stop: its frames' top
/// ([`user_stack::main_thread_frames_top`], the entry stack pointer), else the end of the
/// `[stack]` mapping (`/proc/PID/maps`), `0` when neither is known. The frames' top saves the
/// copy of argv, the environment and the auxiliary vector (kilobytes per hit) that no unwinder
/// reads.
fn main_stack_top(pid: i32) -> u64 {
    if let Some(top) = user_stack::main_thread_frames_top(pid) {
        return top;
    }
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .and_then(|maps| {
            let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
            let range = line.split_whitespace().next()?;
            u64::from_str_radix(range.split_once('-')?.1, 16).ok()
        })
        .unwrap_or(0)
}
