//! Planning a watch of a function's local (`FUNC::LOCAL`, `FUNC::cfg.len`): the local found
//! in DWARF ([`hwbp_symbols::local`]: the function's end of prologue, the CFA rule there, the
//! local's `DW_OP_fbreg` offset), the expression evaluated relative to it, and the registers a
//! live frame takes. The run is `crate::local`'s.

use std::sync::Arc;

use hwbp_core::Access;
use hwbp_symbols::eval::{evaluate_rooted, EvalError, LoadedModule, Scope};
use hwbp_symbols::expr::{Expr, NamePath};
use hwbp_symbols::local::{find_local, FrameLocal, LocalError};

use super::{expression_layout, expression_type, value_pieces, PlannedWatch};
use crate::error::{Error, Result};
use crate::hit::WatchId;

/// A watch of a local variable: where its frames start and where it is in each.
#[derive(Debug, Clone)]
pub(crate) struct LocalWatch {
    /// The local in DWARF (link-time addresses).
    pub local: FrameLocal,
    /// Runtime address of the breakpoint that arms a frame.
    pub arm_addr: u64,
    /// Offset of the watched expression from the local's first byte.
    pub offset: u64,
    /// The expression without its function scope, as gdb names it (`b`, `cfg.len`).
    pub shown: Arc<str>,
}

impl PlannedWatch {
    /// For a local's watch: how its registers are spent, `watch 'recurse::b' takes 1 debug
    /// register while no frame of recurse is live (its entry), 3 in a thread with a live frame
    /// (entry, 1 for the value, return)`; the value's pieces are counted for an aligned local.
    pub fn local_note(&self) -> Option<String> {
        let local = self.local.as_ref()?;
        let value =
            value_pieces(0, self.len, self.layout.as_deref(), self.access).map_or(1, |p| p.len());
        Some(format!(
            "watch '{}' takes 1 debug register while no frame of {} is live (its entry), {} in \
             a thread with a live frame (entry, {} for the value, return){}",
            self.label,
            local.local.function,
            value + 2,
            value,
            if value + 3 <= DEBUG_REGISTERS {
                "; without --stop the value is a perf event and one more register, when free, \
                 watches the return-address slot (a frame left by longjmp)"
            } else {
                "; without --stop the value is a perf event"
            }
        ))
    }
}

/// The root variable of an expression (`b` of `b.x[2]`), when it reads no pointer on the way.
fn root_name(expr: &Expr) -> Option<&NamePath> {
    match expr {
        Expr::Name(path) => Some(path),
        Expr::Member(base, _) | Expr::Index(base, _) => root_name(base),
        _ => None,
    }
}

/// `expr` with its root named by the local's own name (`b.x` for `f::b.x`), as gdb shows it.
fn unscoped(expr: &Expr, name: &str) -> Expr {
    match expr {
        Expr::Name(_) => Expr::Name(NamePath {
            quoted: None,
            segments: vec![name.to_string()],
        }),
        Expr::Member(base, member) => Expr::Member(Box::new(unscoped(base, name)), member.clone()),
        Expr::Index(base, index) => Expr::Index(Box::new(unscoped(base, name)), *index),
        other => other.clone(),
    }
}

/// `(file, function, local)` of a `FUNC::LOCAL`, `'file.c'::FUNC::LOCAL` or `'FUNC'::LOCAL`.
fn split_path(path: &NamePath) -> Option<(Option<&str>, String, &str)> {
    let (local, scope) = path.segments.split_last()?;
    match (path.quoted.as_deref(), scope.is_empty()) {
        (Some(q), true) if !q.contains('.') => Some((None, q.to_string(), local)),
        (quoted, false) => Some((quoted, scope.join("::"), local)),
        _ => None,
    }
}

/// Plans `parsed` as a local's watch when its root is a function's local (`None`: it is not,
/// and the evaluator's own error stands).
pub(crate) fn plan_local(
    id: WatchId,
    text: &str,
    parsed: &Expr,
    access: Access,
    modules: &[LoadedModule],
) -> Option<Result<PlannedWatch>> {
    let refuse = |e: String| Error::bad_input(format!("watch '{text}': {e}"));
    let path = root_name(parsed)?;
    let (file, function, name) = split_path(path)?;
    let mut found = None;
    for module in modules {
        match find_local(&module.debug, file, &function, name) {
            Ok(local) => {
                found = Some((local, module.bias));
                break;
            }
            Err(LocalError::NotFound { .. }) => {}
            Err(e) => return Some(Err(refuse(e.to_string()))),
        }
    }
    let (local, bias) = found?;
    if !matches!(access, Access::Write | Access::ReadWrite) {
        return Some(Err(refuse(
            "a local is watched for writes (:w) or reads and writes (:rw)".into(),
        )));
    }
    let Some(ty) = local.ty.clone() else {
        return Some(Err(refuse(format!(
            "'{name}' in {function} has no type in the debug info"
        ))));
    };
    // Evaluated as if the local were at BASE: member and index offsets only.
    const BASE: u64 = 0x1000_0000_0000;
    let scope = Scope {
        modules,
        symbols: None,
    };
    let evaluated = match evaluate_rooted(parsed, &scope, &mut |_, _| false, path, BASE, &ty) {
        Ok(e) => e,
        Err(e @ EvalError::Unreadable { .. }) | Err(e @ EvalError::NullPointer { .. }) => {
            return Some(Err(refuse(format!(
                "{e}; a local's watch follows no pointer yet: watch the local itself"
            ))))
        }
        Err(e) => return Some(Err(refuse(e.to_string()))),
    };
    let shown: Arc<str> = unscoped(parsed, name).to_string().into();
    let layout = expression_layout(&evaluated);
    let local_watch = LocalWatch {
        arm_addr: local.arm_pc.wrapping_add(bias),
        offset: evaluated.addr - BASE,
        shown,
        local,
    };
    let planned = PlannedWatch {
        id,
        label: text.into(),
        addr: 0,
        len: evaluated.len,
        access,
        pieces: Vec::new(),
        kernel_address: false,
        layout,
        layout_offset: 0,
        value_type: Some(expression_type(&evaluated)),
        chain: None,
        local: Some(Arc::new(local_watch)),
    };
    // Entry, value pieces and return must fit a thread's debug registers at once.
    let value = frame_value_pieces(&planned);
    if value + 2 > DEBUG_REGISTERS {
        return Some(Err(refuse(format!(
            "a live frame needs {} debug registers (its entry, {value} for the value, its \
             return) and a thread has {DEBUG_REGISTERS}: watch one member or element",
            value + 2
        ))));
    }
    Some(Ok(planned))
}

/// Debug registers per thread (x86 DR0-DR3).
pub(crate) const DEBUG_REGISTERS: usize = hwbp_core::arch::native::DEBUG_REGISTERS as usize;

/// The value pieces of a local's watch in a frame, for an aligned local.
fn frame_value_pieces(watch: &PlannedWatch) -> usize {
    value_pieces(0, watch.len, watch.layout.as_deref(), watch.access).map_or(1, |p| p.len())
}
