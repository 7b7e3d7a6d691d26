//! Splitting an arbitrary byte range into pieces a debug register can watch.
//!
//! x86 debug registers watch 1, 2, 4 or 8 bytes (4 at most on i386) at an address aligned to
//! that size. A variable at an odd address or of an odd size needs several registers. The
//! split walks the range from its start and takes, at each step, the largest power-of-two
//! piece that is aligned at the current address and does not run past the end, as gdb's
//! `x86_handle_nonaligned_watchpoint` does. That greedy choice gives the fewest pieces (the
//! tests check it against an exhaustive search).

use alloc::vec::Vec;
use core::fmt;

/// Largest piece on x86_64 (`DR_LEN_8`).
pub const MAX_PIECE_X86_64: u64 = 8;
/// Largest piece on i386 (`DR_LEN_4`).
pub const MAX_PIECE_I386: u64 = 4;

/// One aligned piece of a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegionPiece {
    /// Start address; a multiple of `len`.
    pub addr: u64,
    /// Length in bytes: a power of two no larger than the maximum piece.
    pub len: u64,
    /// `addr` minus the region's start.
    pub offset: u64,
}

/// Why a region cannot be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The region has length 0.
    Empty,
    /// The maximum piece size is not a power of two.
    BadMaxPiece(u64),
    /// The region runs past the end of the address space.
    Wraps {
        /// Region start.
        addr: u64,
        /// Region length.
        len: u64,
    },
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RegionError::Empty => f.write_str("cannot watch 0 bytes: give a length of at least 1"),
            RegionError::BadMaxPiece(max) => write!(
                f,
                "maximum piece size {max} is not a power of two: use 8 (x86_64) or 4 (i386)"
            ),
            RegionError::Wraps { addr, len } => write!(
                f,
                "range {addr:#x} + {len} bytes runs past the end of the address space: use a \
                 smaller length"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RegionError {}

/// An iterator over the pieces of a region, in address order. Allocates nothing.
#[derive(Clone, Debug)]
pub struct RegionPieces {
    start: u64,
    next: u64,
    /// Bytes left; u128 so that a region ending at `u64::MAX` inclusive needs no special case.
    remaining: u128,
    max_piece: u64,
}

impl RegionPieces {
    /// Starts splitting `[addr, addr + len)` into pieces of at most `max_piece` bytes.
    pub fn new(addr: u64, len: u64, max_piece: u64) -> Result<RegionPieces, RegionError> {
        if len == 0 {
            return Err(RegionError::Empty);
        }
        if !max_piece.is_power_of_two() {
            return Err(RegionError::BadMaxPiece(max_piece));
        }
        if addr.checked_add(len - 1).is_none() {
            return Err(RegionError::Wraps { addr, len });
        }
        Ok(RegionPieces {
            start: addr,
            next: addr,
            remaining: len as u128,
            max_piece,
        })
    }
}

impl Iterator for RegionPieces {
    type Item = RegionPiece;

    fn next(&mut self) -> Option<RegionPiece> {
        if self.remaining == 0 {
            return None;
        }
        // Largest power of two dividing the address (address 0 is aligned to anything).
        let alignment = if self.next == 0 {
            self.max_piece
        } else {
            1u64 << self.next.trailing_zeros()
        };
        let mut len = alignment.min(self.max_piece);
        while len as u128 > self.remaining {
            len /= 2;
        }
        let piece = RegionPiece {
            addr: self.next,
            len,
            offset: self.next - self.start,
        };
        self.remaining -= len as u128;
        self.next = self.next.wrapping_add(len);
        Some(piece)
    }
}

/// Splits `[addr, addr + len)` into the fewest aligned pieces of at most `max_piece` bytes.
///
/// `split_region(0x1003, 8, 8)` gives 1 byte at `0x1003`, 4 at `0x1004`, 2 at `0x1008` and 1
/// at `0x100a`.
pub fn split_region(addr: u64, len: u64, max_piece: u64) -> Result<Vec<RegionPiece>, RegionError> {
    Ok(RegionPieces::new(addr, len, max_piece)?.collect())
}

/// How many pieces (debug registers) [`split_region`] would need, without allocating.
pub fn pieces_needed(addr: u64, len: u64, max_piece: u64) -> Result<usize, RegionError> {
    Ok(RegionPieces::new(addr, len, max_piece)?.count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pieces(addr: u64, len: u64, max: u64) -> Vec<(u64, u64)> {
        split_region(addr, len, max)
            .unwrap()
            .into_iter()
            .map(|p| (p.addr, p.len))
            .collect()
    }

    #[test]
    fn worked_splits() {
        assert_eq!(pieces(0x1000, 8, 8), vec![(0x1000, 8)]);
        assert_eq!(pieces(0x1000, 4, 8), vec![(0x1000, 4)]);
        assert_eq!(
            pieces(0x1003, 8, 8),
            vec![(0x1003, 1), (0x1004, 4), (0x1008, 2), (0x100a, 1)]
        );
        assert_eq!(pieces(0x1001, 3, 8), vec![(0x1001, 1), (0x1002, 2)]);
        // a 24-byte object at an 8-aligned address: three 8-byte registers
        assert_eq!(
            pieces(0x2000, 24, 8),
            vec![(0x2000, 8), (0x2008, 8), (0x2010, 8)]
        );
        // i386: at most 4
        assert_eq!(pieces(0x2000, 8, 4), vec![(0x2000, 4), (0x2004, 4)]);
        assert_eq!(pieces(0, 16, 8), vec![(0, 8), (8, 8)]);
        let split = split_region(0x1003, 8, 8).unwrap();
        let offsets: Vec<u64> = split.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![0, 1, 5, 7]);
        assert_eq!(pieces_needed(0x1003, 8, 8), Ok(4));
        assert_eq!(pieces_needed(0x1000, 32, 8), Ok(4));
    }

    #[test]
    fn edges_of_the_address_space() {
        assert_eq!(pieces(u64::MAX, 1, 8), vec![(u64::MAX, 1)]);
        assert_eq!(pieces(u64::MAX - 7, 8, 8), vec![(u64::MAX - 7, 8)]);
        assert_eq!(
            split_region(u64::MAX, 2, 8),
            Err(RegionError::Wraps {
                addr: u64::MAX,
                len: 2
            })
        );
    }

    #[test]
    fn bad_inputs() {
        assert_eq!(split_region(0x1000, 0, 8), Err(RegionError::Empty));
        assert_eq!(pieces_needed(0x1000, 0, 8), Err(RegionError::Empty));
        assert_eq!(split_region(0x1000, 4, 6), Err(RegionError::BadMaxPiece(6)));
        assert_eq!(split_region(0x1000, 4, 0), Err(RegionError::BadMaxPiece(0)));
        assert_eq!(
            RegionError::Empty.to_string(),
            "cannot watch 0 bytes: give a length of at least 1"
        );
    }

    /// Fewest aligned power-of-two pieces (each <= max) covering [addr, addr+len), by
    /// dynamic programming over every position.
    fn brute_force_minimum(addr: u64, len: u64, max: u64) -> usize {
        let n = len as usize;
        let mut best = vec![usize::MAX; n + 1];
        best[0] = 0;
        for i in 0..n {
            if best[i] == usize::MAX {
                continue;
            }
            let mut size = 1u64;
            while size <= max {
                let at = addr + i as u64;
                if at & (size - 1) == 0 && i + size as usize <= n {
                    let j = i + size as usize;
                    best[j] = best[j].min(best[i] + 1);
                }
                size *= 2;
            }
        }
        best[n]
    }

    proptest! {
        #[test]
        fn pieces_are_aligned_disjoint_and_cover(addr in 0u64..1 << 40, len in 1u64..200,
                                                 max_shift in 0u32..4) {
            let max = 1u64 << max_shift;
            let split = split_region(addr, len, max).unwrap();
            let mut expected_next = addr;
            for p in &split {
                prop_assert!(p.len.is_power_of_two() && p.len <= max);
                prop_assert_eq!(p.addr % p.len, 0);
                prop_assert_eq!(p.addr, expected_next);
                prop_assert_eq!(p.offset, p.addr - addr);
                expected_next = p.addr + p.len;
            }
            prop_assert_eq!(expected_next, addr + len);
            prop_assert_eq!(pieces_needed(addr, len, max).unwrap(), split.len());
        }

        #[test]
        fn count_is_minimal(addr in 0u64..4096, len in 1u64..64, max_shift in 0u32..4) {
            let max = 1u64 << max_shift;
            prop_assert_eq!(
                pieces_needed(addr, len, max).unwrap(),
                brute_force_minimum(addr, len, max)
            );
        }

        #[test]
        fn never_panics(addr in any::<u64>(), len in any::<u64>(), max in any::<u64>()) {
            let _ = pieces_needed(addr, len.min(1 << 12), max);
            let _ = RegionPieces::new(addr, len, max);
        }
    }
}
