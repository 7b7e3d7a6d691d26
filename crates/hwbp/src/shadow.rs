//! The shadow of a watch wider than one piece (a struct or array split over several debug
//! registers): hwbp's copy of the watched bytes, so that a hit's whole `old`/`new` and its
//! `changes` are the value as that write left it, without reading the process again.
//!
//! The shadow is seeded by the one read made when the watch is armed
//! ([`crate::values::WatchValues::new`]) and advanced by each piece's exact write: the BPF hit
//! handler's old and new bytes of the piece it trapped on (`value_before`/`value_after`), in
//! the order hwbp receives the records. No syscall per hit: a record carries all it needs.
//!
//! Order: the handler's records come through one BPF ring buffer in the order the handlers
//! reserved them (`bpf_ringbuf_reserve` takes the ring's lock, `kernel/bpf/ringbuf.c`), right
//! after each piece's atomic exchange of its previous value; hwbp then sorts each batch by
//! the records' `bpf_ktime_get_ns` time. Per piece, `old -> new` is exact whatever the
//! threads (the exchange is atomic, so the piece's own bytes are always right). Across pieces,
//! the writes of one thread are in program order; writes of two threads on two CPUs are
//! ordered by their timestamps, which is only as good as the clock (two writes within the
//! same few nanoseconds may be seen in either order), and two threads writing the same bytes
//! at once may be seen in either order. A hit's `changes` only ever name bytes of its own
//! piece.
//!
//! Rotation (fewer registers than pieces, [`crate::rotation`]): a piece that is not armed may
//! be written unseen, so its bytes are unknown from just before its move off a register until
//! its next turn starts, when the rotation reads the piece's value once it is armed again
//! (one read per turn, not per hit; the turn's times are sorted with the records', so a write
//! just before a move is delivered before it); those bytes print as gdb prints data it does
//! not have, `<unavailable>` ([`hwbp_symbols::value::UNAVAILABLE`]).
//!
//! A value chain ([`crate::plan::chain`]) covers its value's pieces; when a pointer on the way is
//! written and the pieces move to the new object, each moved piece starts a turn there with
//! its value read once its breakpoint has moved (unknown while the chain is unreadable), and
//! the pointer's hit takes its whole new value from the shadow so seeded (read after, only
//! while it is unreadable). A write to the new object between the pointer's write and that
//! move is not seen, as with rotation; its bytes are in the seed.

use hwbp_linux::perf::WatchRequest;
use hwbp_symbols::value::KnownBytes;

/// The bytes of a value and which of them are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The bytes (an unknown byte holds whatever was last seen there).
    pub bytes: Vec<u8>,
    /// Per byte: known.
    pub known: Vec<bool>,
}

impl Snapshot {
    /// Every byte is known.
    pub fn complete(&self) -> bool {
        self.known.iter().all(|k| *k)
    }

    /// The bytes with which are known, as the value printer takes them.
    pub fn view(&self) -> KnownBytes<'_> {
        KnownBytes {
            bytes: &self.bytes,
            known: (!self.complete()).then_some(&self.known[..]),
        }
    }
}

/// Where one piece's bytes lie in the value: `value[start..start + len]` is
/// `piece_bytes[skip..skip + len]` of its `piece_len` bytes.
#[derive(Debug, Clone, Copy)]
struct PieceSpan {
    start: usize,
    skip: usize,
    len: usize,
    piece_len: usize,
}

/// The shadow of one watch; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Shadow {
    value: Snapshot,
    pieces: Vec<PieceSpan>,
    /// Per piece: armed now.
    armed: Vec<bool>,
}

impl Shadow {
    /// The shadow of a value at `addr` of `len` bytes watched by `pieces`, seeded with
    /// `seed` (the value read at arming; `None`: unreadable, every byte unknown). Every
    /// piece starts armed ([`Shadow::turn_ended`] for one that is not).
    pub(crate) fn new(addr: u64, len: usize, pieces: &[WatchRequest], seed: Option<&[u8]>) -> Self {
        let spans = pieces
            .iter()
            .map(|p| {
                let start = p.addr.saturating_sub(addr) as usize;
                let skip = addr.saturating_sub(p.addr) as usize;
                let end = (p.addr + p.len).saturating_sub(addr).min(len as u64) as usize;
                PieceSpan {
                    start: start.min(len),
                    skip,
                    len: end.saturating_sub(start.min(len)),
                    piece_len: p.len as usize,
                }
            })
            .collect();
        let value = match seed.filter(|s| s.len() >= len) {
            Some(seed) => Snapshot {
                bytes: seed[..len].to_vec(),
                known: vec![true; len],
            },
            None => Snapshot {
                bytes: vec![0; len],
                known: vec![false; len],
            },
        };
        Shadow {
            value,
            pieces: spans,
            armed: vec![true; pieces.len()],
        }
    }

    fn set(&mut self, piece: usize, raw: Option<u64>) {
        let Some(span) = self.pieces.get(piece).copied() else {
            return;
        };
        let bytes = raw.map(u64::to_le_bytes);
        for i in 0..span.len {
            let at = span.start + i;
            match bytes.and_then(|b| b.get(span.skip + i).copied()) {
                Some(b) => {
                    self.value.bytes[at] = b;
                    self.value.known[at] = true;
                }
                None => self.value.known[at] = false,
            }
        }
    }

    /// Piece `piece` was written from `old` to `new`: the whole value before and after that
    /// write. The shadow's own bytes of the piece stand when known: the handler's `old` is its
    /// seed from before the piece's move, which misses a write in that moment, and the
    /// shadow's read once armed does not. Only when those bytes already equal `new` (the read
    /// was made just after this write) or are unknown does the handler's `old` fill them in.
    pub(crate) fn write(
        &mut self,
        piece: usize,
        old: Option<u64>,
        new: u64,
    ) -> (Snapshot, Snapshot) {
        let current = self.piece_value(&self.value, piece);
        if old.is_some() && current.is_none_or(|v| v == new) {
            self.set(piece, old);
        }
        let before = self.value.clone();
        self.set(piece, Some(new));
        let after = self.value.clone();
        if !self.armed.get(piece).copied().unwrap_or(true) {
            // A record that came in after its piece's turn ended: the piece is not watched now.
            self.set(piece, None);
        }
        (before, after)
    }

    /// Piece `piece`'s raw value in `snapshot` (its `value_before`/`value_after`), when the
    /// piece lies wholly in the value and its bytes are known.
    pub(crate) fn piece_value(&self, snapshot: &Snapshot, piece: usize) -> Option<u64> {
        let span = self.pieces.get(piece)?;
        if span.skip != 0 || span.len != span.piece_len || span.len > 8 {
            return None;
        }
        let range = span.start..span.start + span.len;
        if !snapshot.known[range.clone()].iter().all(|k| *k) {
            return None;
        }
        let mut raw = [0u8; 8];
        raw[..span.len].copy_from_slice(&snapshot.bytes[range]);
        Some(u64::from_le_bytes(raw))
    }

    /// The value as the shadow holds it now.
    pub(crate) fn value(&self) -> &Snapshot {
        &self.value
    }

    /// Piece `piece`'s turn ended: its bytes are unknown until its next turn.
    pub(crate) fn turn_ended(&mut self, piece: usize) {
        if let Some(armed) = self.armed.get_mut(piece) {
            *armed = false;
        }
        self.set(piece, None);
    }

    /// Piece `piece`'s turn started with the value `seed` read then (`None`: unreadable).
    pub(crate) fn turn_started(&mut self, piece: usize, seed: Option<u64>) {
        if let Some(armed) = self.armed.get_mut(piece) {
            *armed = true;
        }
        self.set(piece, seed);
    }

    /// The whole value was read (`None`: unreadable): every armed piece's bytes are that.
    pub(crate) fn reset(&mut self, bytes: Option<&[u8]>) {
        let len = self.value.bytes.len();
        match bytes.filter(|b| b.len() >= len) {
            Some(b) => {
                self.value.bytes.copy_from_slice(&b[..len]);
                self.value.known.fill(true);
            }
            None => self.value.known.fill(false),
        }
        for piece in 0..self.pieces.len() {
            if !self.armed[piece] {
                self.set(piece, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hwbp_core::Access;

    fn piece(addr: u64, len: u64) -> WatchRequest {
        WatchRequest::new(addr, len, Access::Write)
    }

    #[test]
    fn each_write_changes_only_its_piece_and_an_unarmed_piece_is_unknown() {
        let seed: Vec<u8> = (0..16).collect();
        let pieces = [piece(0x1000, 8), piece(0x1008, 8)];
        let mut shadow = Shadow::new(0x1000, 16, &pieces, Some(&seed));
        let (before, after) = shadow.write(
            1,
            Some(u64::from_le_bytes(seed[8..].try_into().unwrap())),
            7,
        );
        // The shadow's own bytes stand over the handler's stale `old`.
        assert_eq!(before.bytes, seed);
        assert_eq!(
            shadow.piece_value(&before, 1),
            Some(u64::from_le_bytes(seed[8..].try_into().unwrap()))
        );
        assert_eq!(&after.bytes[..8], &seed[..8]);
        assert_eq!(&after.bytes[8..], &7u64.to_le_bytes());
        assert!(after.complete());
        shadow.turn_ended(0);
        assert_eq!(shadow.value.known, [[false; 8], [true; 8]].concat());
        // A late record of the ended piece is exact for its hit, then unknown again.
        let (_, after) = shadow.write(0, Some(0), 9);
        assert!(after.complete());
        assert!(!shadow.value.complete());
        shadow.turn_started(0, Some(9));
        assert!(shadow.value.complete());
        assert_eq!(&shadow.value.bytes[..8], &9u64.to_le_bytes());
    }

    #[test]
    fn a_piece_wider_than_the_value_covers_only_its_bytes() {
        // A 12-byte value at 0x1004: pieces 0x1000/8 (bytes 4..8 of it) and 0x1008/8.
        let pieces = [piece(0x1000, 8), piece(0x1008, 8)];
        let mut shadow = Shadow::new(0x1004, 12, &pieces, Some(&[0; 12]));
        let (_, after) = shadow.write(0, Some(0), 0x1122_3344_5566_7788);
        assert_eq!(&after.bytes[..4], &[0x44, 0x33, 0x22, 0x11]);
        let (_, after) = shadow.write(1, Some(0), u64::MAX);
        assert_eq!(&after.bytes[4..], &[0xff; 8]);
    }
}
