//! Debug-register pieces: the length a watch takes, the split of a region into aligned
//! pieces (`hwbp_core::region`), along the leaf members of its DWARF type where that does not
//! take many more, and each piece checked against the native architecture's rules
//! (`hwbp_core::arch::native`, the kernel's `hw_breakpoint_arch_parse` order).

use hwbp_core::arch::native::{self, BreakpointRequest};
use hwbp_core::region;
use hwbp_core::spec::WatchSpec;
use hwbp_core::Access;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::probe;
use hwbp_symbols::expr;
use hwbp_symbols::types::Type;

use crate::error::{Error, Result};
use crate::typed::WatchType;

use super::MAX_PIECES;

/// A layout-guided split may use up to this many times the pieces of a plain split (a
/// `char[4096]` split per element would need 4096 pieces instead of 512).
pub(super) const LEAF_SPLIT_FACTOR: usize = 2;

/// The length to watch: as given, else the symbol's size, else the widest aligned length at
/// the address.
pub(super) fn choose_len(spec: &WatchSpec, addr: u64, symbol_size: Option<u64>) -> u64 {
    if let Some(len) = spec.len {
        return len;
    }
    if spec.access == Access::Execute {
        return native::MAX_PIECE;
    }
    match symbol_size {
        Some(size) if size > 0 => size,
        _ => [8, 4, 2, 1]
            .into_iter()
            .find(|len| addr.is_multiple_of(*len))
            .unwrap_or(1),
    }
}

/// Splits `[addr, addr+len)` along the leaf members of `ty` (`addr` is at `offset` in the
/// variable), each leaf into aligned pieces, so no piece spans two members. Bytes between
/// leaves (padding) are left out. `None` when the type covers none of the region.
pub(super) fn split_by_leaves(
    ty: &Type,
    offset: u64,
    addr: u64,
    len: u64,
) -> Option<Vec<(u64, u64)>> {
    let end = offset.checked_add(len)?;
    let mut leaves = ty.leaves("");
    leaves.sort_by_key(|leaf| leaf.offset);
    let mut pieces = Vec::new();
    let mut covered_to = offset;
    for leaf in leaves {
        let leaf_start = leaf.offset.max(covered_to);
        let leaf_end = (leaf.offset + leaf.size).min(end);
        if leaf_start >= leaf_end {
            continue;
        }
        let piece_addr = addr + (leaf_start - offset);
        for piece in
            region::split_region(piece_addr, leaf_end - leaf_start, native::MAX_PIECE).ok()?
        {
            pieces.push((piece.addr, piece.len));
        }
        covered_to = leaf_end;
    }
    (!pieces.is_empty()).then_some(pieces)
}

/// Splits `[addr, addr+len)` into debug-register pieces; refuses regions that would need more
/// than [`MAX_PIECES`]. `label` names the watch in errors.
pub(super) fn split(label: &str, access: Access, addr: u64, len: u64) -> Result<Vec<(u64, u64)>> {
    let max = native::MAX_PIECE;
    if access == Access::Execute
        || (len <= max && addr.is_multiple_of(len) && len.is_power_of_two())
    {
        return Ok(vec![(addr, len)]);
    }
    let needed = region::pieces_needed(addr, len, max)
        .map_err(|e| Error::bad_input(format!("watch '{label}': {e}")))?;
    if needed > MAX_PIECES {
        let base = label.split(['/', ':']).next().unwrap_or(label);
        let part = if expr::looks_like_expression(label) {
            format!("a member or an element (e.g. {base}[0] or {base}.MEMBER)")
        } else {
            format!("with /LEN (e.g. {base}/64)")
        };
        return Err(Error::bad_input(format!(
            "watch '{label}': {len} bytes at {addr:#x} need {needed} debug-register pieces; \
             hwbp rotates at most {MAX_PIECES}: watch a part of it {part}"
        )));
    }
    let pieces = region::split_region(addr, len, max)
        .map_err(|e| Error::bad_input(format!("watch '{label}': {e}")))?;
    Ok(pieces.into_iter().map(|p| (p.addr, p.len)).collect())
}

/// The pieces of a value of `len` bytes at `addr`: aligned pieces, along the leaf members of
/// `layout` (the value's own, offset 0) when that does not take many more pieces.
pub(crate) fn value_pieces(
    addr: u64,
    len: u64,
    layout: Option<&WatchType>,
    access: Access,
) -> Result<Vec<(u64, u64)>> {
    value_pieces_of(&format!("{addr:#x}"), addr, len, layout, access)
}

pub(super) fn value_pieces_of(
    label: &str,
    addr: u64,
    len: u64,
    layout: Option<&WatchType>,
    access: Access,
) -> Result<Vec<(u64, u64)>> {
    let pieces = split(label, access, addr, len)?;
    if pieces.len() > 1 {
        let ty = layout.and_then(|l| l.ty.as_ref());
        if let Some(leaf_pieces) = ty.and_then(|t| split_by_leaves(t, 0, addr, len)) {
            if leaf_pieces.len() <= pieces.len() * LEAF_SPLIT_FACTOR {
                return Ok(leaf_pieces);
            }
        }
    }
    Ok(pieces)
}

/// Checks each piece against the architecture's rules and makes it a request.
pub(super) fn validate_pieces(
    label: &str,
    pieces: &[(u64, u64)],
    access: Access,
    exclude_kernel: bool,
    exclude_user: bool,
) -> Result<Vec<WatchRequest>> {
    pieces
        .iter()
        .map(|&(addr, len)| {
            let request = BreakpointRequest {
                addr,
                len,
                bp_type: access.bp_type(),
            };
            native::validate(&request, exclude_kernel, probe::is_root())
                .map_err(|e| Error::bad_input(format!("watch '{label}': {e}")))?;
            Ok(WatchRequest {
                addr,
                len,
                access,
                pinned: true,
                exclude_kernel,
                exclude_user,
            })
        })
        .collect()
}
