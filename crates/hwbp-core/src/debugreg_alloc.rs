//! Allocating the four x86 debug address registers (DR0-DR3) of one thread to watch requests,
//! the way a debugger does it through ptrace (gdb's `x86-dregs.c` is the model), but with the
//! facts stated exactly:
//!
//! - identical requests (same address, length and type) share one register, reference counted;
//! - a region that is unaligned or longer than 8 bytes is split into the fewest aligned pieces
//!   ([`crate::region::split_region`]), each in its own register (a 24-byte struct takes 3, a
//!   3-byte field at an odd address takes 2);
//! - when the registers run out, nothing is changed and the error says exactly what would fit.
//!
//! The DR7 value the allocation needs comes from [`crate::arch::x86::encode_dr7_local`] (local
//! enable bits and `LE`, as gdb writes them; `arch/x86/kernel/ptrace.c` accepts L or G bits).

use alloc::vec::Vec;
use core::fmt;

use crate::arch::x86::{encode_dr7_local, X86Len, X86Type, HBP_NUM};
use crate::region::{split_region, RegionError};

/// Largest x86_64 watch piece (`DR_LEN_8`).
const MAX_PIECE: u64 = 8;

/// One debug register's contents: an aligned address, a length and a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DebugRegisterUse {
    /// The address in DRn.
    pub addr: u64,
    /// The length field of DR7 for this slot.
    pub len: X86Len,
    /// The R/W field of DR7 for this slot.
    pub ty: X86Type,
}

impl DebugRegisterUse {
    /// Bytes covered.
    pub fn bytes(&self) -> u64 {
        self.len.bytes()
    }
}

/// One requested watch as the allocator saw it: the slots that hold its pieces, in address order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocatedWatch {
    /// Region start.
    pub addr: u64,
    /// Region length in bytes.
    pub len: u64,
    /// The type of every piece.
    pub ty: X86Type,
    /// `(slot, piece)` for each piece, in address order.
    pub slots: Vec<(u8, DebugRegisterUse)>,
}

impl AllocatedWatch {
    /// The 4-bit mask of the slots holding this watch (bit `i` = DR`i`).
    pub fn slot_mask(&self) -> u8 {
        self.slots
            .iter()
            .fold(0, |mask, (slot, _)| mask | 1 << slot)
    }
}

/// Why a request cannot be allocated. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The region is empty or wraps around the address space.
    Region(RegionError),
    /// An execute breakpoint covers one instruction address: its length must be 1 (LEN_X).
    ExecuteLength {
        /// The length asked for.
        len: u64,
    },
    /// More registers are needed than are free.
    DoesNotFit {
        /// Region start.
        addr: u64,
        /// Region length.
        len: u64,
        /// Registers the request needs that are not already shared.
        needed: usize,
        /// Registers free.
        free: usize,
        /// The longest prefix of the region (bytes from `addr`) that would fit now, 0 if none.
        fits_bytes: u64,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Region(e) => write!(f, "{e}"),
            AllocError::ExecuteLength { len } => write!(
                f,
                "an execute breakpoint covers one instruction, not {len} bytes: drop the length"
            ),
            AllocError::DoesNotFit {
                addr,
                len,
                needed,
                free,
                fits_bytes,
            } => {
                write!(
                    f,
                    "{len} bytes at {addr:#x} need {needed} more debug register{} but only {free} \
                     of {HBP_NUM} {} free",
                    if *needed == 1 { "" } else { "s" },
                    if *free == 1 { "is" } else { "are" },
                )?;
                if *fits_bytes > 0 {
                    write!(
                        f,
                        ": the first {fits_bytes} bytes ({addr:#x}/{fits_bytes}) fit"
                    )
                } else {
                    write!(f, ": remove another watch first")
                }
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AllocError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SlotState {
    piece: DebugRegisterUse,
    refs: u32,
}

/// The four debug registers of a thread and who uses them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugRegisterAllocator {
    slots: [Option<SlotState>; HBP_NUM as usize],
}

/// The pieces `[addr, addr+len)` needs for type `ty`.
pub fn pieces_for(addr: u64, len: u64, ty: X86Type) -> Result<Vec<DebugRegisterUse>, AllocError> {
    if ty == X86Type::Execute {
        if len != 1 {
            return Err(AllocError::ExecuteLength { len });
        }
        return Ok(alloc::vec![DebugRegisterUse {
            addr,
            len: X86Len::LEN_X,
            ty
        }]);
    }
    let pieces = split_region(addr, len, MAX_PIECE).map_err(AllocError::Region)?;
    Ok(pieces
        .into_iter()
        .map(|p| DebugRegisterUse {
            addr: p.addr,
            len: X86Len::from_bytes(p.len).unwrap_or(X86Len::Len1),
            ty,
        })
        .collect())
}

impl DebugRegisterAllocator {
    /// An allocator with all four registers free.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers not holding anything.
    pub fn free(&self) -> usize {
        self.slots.iter().filter(|s| s.is_none()).count()
    }

    /// The contents and reference count of slot `slot` (0..=3).
    pub fn slot(&self, slot: u8) -> Option<(DebugRegisterUse, u32)> {
        self.slots
            .get(usize::from(slot))
            .copied()
            .flatten()
            .map(|s| (s.piece, s.refs))
    }

    /// DR0-DR3 as they should be written (0 for a free slot).
    pub fn addresses(&self) -> [u64; HBP_NUM as usize] {
        let mut out = [0; HBP_NUM as usize];
        for (o, s) in out.iter_mut().zip(&self.slots) {
            *o = s.map_or(0, |s| s.piece.addr);
        }
        out
    }

    /// The DR7 value enabling every used slot (local enable bits, `LE`); 0 when none is used.
    pub fn dr7(&self) -> u64 {
        let mut dr7 = 0;
        for (slot, s) in (0u8..).zip(&self.slots) {
            if let Some(s) = s {
                dr7 |= encode_dr7_local(slot, s.piece.len, s.piece.ty).unwrap_or(0);
            }
        }
        dr7
    }

    /// How many new registers `pieces` would take (pieces already present are shared).
    fn new_registers(&self, pieces: &[DebugRegisterUse]) -> usize {
        let mut seen: Vec<DebugRegisterUse> = Vec::new();
        for p in pieces {
            let shared = self.slots.iter().flatten().any(|s| s.piece == *p);
            if !shared && !seen.contains(p) {
                seen.push(*p);
            }
        }
        seen.len()
    }

    /// Allocates `[addr, addr+len)` for `ty`: shared registers gain a reference, new pieces
    /// take the lowest free slots. On error nothing changes.
    pub fn allocate(
        &mut self,
        addr: u64,
        len: u64,
        ty: X86Type,
    ) -> Result<AllocatedWatch, AllocError> {
        let pieces = pieces_for(addr, len, ty)?;
        let needed = self.new_registers(&pieces);
        let free = self.free();
        if needed > free {
            let fits_bytes = (1..len)
                .rev()
                .find(|prefix| {
                    pieces_for(addr, *prefix, ty)
                        .map(|p| self.new_registers(&p) <= free)
                        .unwrap_or(false)
                })
                .unwrap_or(0);
            return Err(AllocError::DoesNotFit {
                addr,
                len,
                needed,
                free,
                fits_bytes,
            });
        }
        let mut slots = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let index = match self
                .slots
                .iter()
                .position(|s| s.is_some_and(|s| s.piece == piece))
            {
                Some(i) => i,
                None => {
                    let i = self
                        .slots
                        .iter()
                        .position(Option::is_none)
                        .expect("checked: enough free slots");
                    self.slots[i] = Some(SlotState { piece, refs: 0 });
                    i
                }
            };
            if let Some(s) = self.slots[index].as_mut() {
                s.refs += 1;
            }
            slots.push((index as u8, piece));
        }
        Ok(AllocatedWatch {
            addr,
            len,
            ty,
            slots,
        })
    }

    /// Releases a watch returned by [`DebugRegisterAllocator::allocate`]: each of its slots
    /// loses a reference and is freed at zero.
    pub fn release(&mut self, watch: &AllocatedWatch) {
        for (slot, piece) in &watch.slots {
            if let Some(state) = self.slots.get_mut(usize::from(*slot)) {
                if let Some(s) = state.as_mut().filter(|s| s.piece == *piece) {
                    s.refs -= 1;
                    if s.refs == 0 {
                        *state = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identical_requests_share_one_register() {
        let mut a = DebugRegisterAllocator::new();
        let w1 = a.allocate(0x1000, 8, X86Type::Write).unwrap();
        let w2 = a.allocate(0x1000, 8, X86Type::Write).unwrap();
        assert_eq!(w1.slots, w2.slots);
        assert_eq!(a.free(), 3);
        assert_eq!(a.slot(0).unwrap().1, 2);
        // Same address, other type: a second register.
        let w3 = a.allocate(0x1000, 8, X86Type::ReadWrite).unwrap();
        assert_eq!(w3.slots[0].0, 1);
        a.release(&w1);
        assert_eq!(a.slot(0).unwrap().1, 1);
        a.release(&w2);
        assert_eq!(a.slot(0), None);
        assert_eq!(a.free(), 3);
        assert_eq!(a.dr7(), 0x00B0_0104);
    }

    #[test]
    fn a_24_byte_struct_takes_three_registers_and_a_3_byte_field_two() {
        let mut a = DebugRegisterAllocator::new();
        let s = a.allocate(0x2000, 24, X86Type::Write).unwrap();
        assert_eq!(
            s.slots
                .iter()
                .map(|(i, p)| (*i, p.addr, p.bytes()))
                .collect::<Vec<_>>(),
            [(0, 0x2000, 8), (1, 0x2008, 8), (2, 0x2010, 8)]
        );
        let err = a.allocate(0x3001, 3, X86Type::Write).unwrap_err();
        assert_eq!(
            err,
            AllocError::DoesNotFit {
                addr: 0x3001,
                len: 3,
                needed: 2,
                free: 1,
                fits_bytes: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "3 bytes at 0x3001 need 2 more debug registers but only 1 of 4 is free: \
             the first 1 bytes (0x3001/1) fit"
        );
        a.release(&s);
        let f = a.allocate(0x3001, 3, X86Type::Write).unwrap();
        assert_eq!(
            f.slots
                .iter()
                .map(|(_, p)| (p.addr, p.bytes()))
                .collect::<Vec<_>>(),
            [(0x3001, 1), (0x3002, 2)]
        );
        assert_eq!(f.slot_mask(), 0b11);
    }

    #[test]
    fn full_registers_say_remove_another_watch() {
        let mut a = DebugRegisterAllocator::new();
        a.allocate(0x2000, 32, X86Type::Write).unwrap();
        let err = a.allocate(0x4000, 4, X86Type::Write).unwrap_err();
        assert_eq!(
            err.to_string(),
            "4 bytes at 0x4000 need 1 more debug register but only 0 of 4 are free: \
             remove another watch first"
        );
        // Sharing still works when full.
        assert!(a.allocate(0x2008, 8, X86Type::Write).is_ok());
    }

    #[test]
    fn execute_breakpoints_use_len_x() {
        let mut a = DebugRegisterAllocator::new();
        let w = a.allocate(0x401000, 1, X86Type::Execute).unwrap();
        assert_eq!(w.slots[0].1.len, X86Len::LEN_X);
        assert_eq!(a.dr7(), 0x101);
        assert_eq!(
            a.allocate(0x401000, 8, X86Type::Execute),
            Err(AllocError::ExecuteLength { len: 8 })
        );
    }

    proptest! {
        #[test]
        fn allocation_is_consistent(reqs in proptest::collection::vec(
            (0u64..64, 1u64..20, prop_oneof![Just(X86Type::Write), Just(X86Type::ReadWrite)]),
            1..8,
        )) {
            let mut a = DebugRegisterAllocator::new();
            let mut live = Vec::new();
            for (addr, len, ty) in reqs {
                let before = a.clone();
                match a.allocate(0x1000 + addr, len, ty) {
                    Ok(w) => {
                        // Pieces cover the region exactly, aligned, in address order.
                        let mut next = 0x1000 + addr;
                        for (slot, p) in &w.slots {
                            prop_assert_eq!(p.addr, next);
                            prop_assert_eq!(p.addr % p.bytes(), 0);
                            prop_assert_eq!(a.slot(*slot).unwrap().0, *p);
                            next += p.bytes();
                        }
                        prop_assert_eq!(next, 0x1000 + addr + len);
                        live.push(w);
                    }
                    Err(AllocError::DoesNotFit { needed, free, fits_bytes, .. }) => {
                        prop_assert_eq!(&a, &before);
                        prop_assert!(needed > free);
                        prop_assert!(fits_bytes < len);
                        if fits_bytes > 0 {
                            let mut probe = a.clone();
                            prop_assert!(probe.allocate(0x1000 + addr, fits_bytes, ty).is_ok());
                        }
                        let mut probe = a.clone();
                        prop_assert!(probe.allocate(0x1000 + addr, fits_bytes + 1, ty).is_err());
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
                // Reference counts equal the number of live pieces per slot.
                for slot in 0..4u8 {
                    let users = live.iter().flat_map(|w| &w.slots).filter(|(s, _)| *s == slot).count();
                    prop_assert_eq!(a.slot(slot).map_or(0, |s| s.1 as usize), users);
                }
            }
            for w in &live {
                a.release(w);
            }
            prop_assert_eq!(a, DebugRegisterAllocator::new());
        }
    }
}
