//! What a trapping store wrote, computed from the registers at the trap: x86 data breakpoints
//! trap after the access (Intel SDM Vol. 3B §17.3.1.2), so the registers that fed a plain `mov`
//! still hold its value even when another thread has written the same place since. Used by stop
//! mode (registers from `PTRACE_GETREGS`) and by perf mode's fallback without BPF (registers
//! from `PERF_SAMPLE_REGS_USER`).

/// What a plain `mov` store wrote, computable from the registers at the stop: exact even when
/// another thread writes the same place before the stop is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedStore {
    /// The stored value: a register (index in encoding order, bit shift for `ah`..`bh`) or an
    /// immediate.
    source: StoreSource,
    /// Bytes stored.
    bytes: u64,
    /// The destination address: base register, index register and scale, displacement
    /// (absolute for `rip`-relative operands).
    base: Option<usize>,
    index: Option<(usize, u32)>,
    displacement: u64,
}

/// Where a decoded store's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSource {
    /// A general-purpose register: its index in encoding order and the bit shift of the byte
    /// register (`ah`..`bh` are bits 8-15).
    Register {
        /// Index in encoding order (`rax` = 0 ... `r15` = 15).
        index: usize,
        /// Right shift applied to the register's value.
        shift: u32,
    },
    /// An immediate operand, zero-extended.
    Immediate(u64),
}

/// A general-purpose register as (index in encoding order, bit shift, bytes).
fn gpr(register: iced_x86::Register) -> Option<(usize, u32, u64)> {
    let r = register as usize;
    match r {
        1..=4 => Some((r - 1, 0, 1)),
        5..=8 => Some((r - 5, 8, 1)),
        9..=20 => Some((r - 9 + 4, 0, 1)),
        21..=36 => Some((r - 21, 0, 2)),
        37..=52 => Some((r - 37, 0, 4)),
        53..=68 => Some((r - 53, 0, 8)),
        _ => None,
    }
}

/// Decodes the instruction at `address` (`code` holds its bytes); `Some` for a `mov` to memory
/// from a register or an immediate, without an `fs`/`gs` segment.
pub fn decode_store(address: u64, code: &[u8]) -> Option<DecodedStore> {
    use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic, OpKind, Register};
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let instruction = decoder.decode();
    if instruction.is_invalid()
        || instruction.mnemonic() != Mnemonic::Mov
        || instruction.op_kind(0) != OpKind::Memory
        || matches!(instruction.memory_segment(), Register::FS | Register::GS)
    {
        return None;
    }
    let (source, bytes) = match instruction.op_kind(1) {
        OpKind::Register => {
            let (index, shift, bytes) = gpr(instruction.op_register(1))?;
            (StoreSource::Register { index, shift }, bytes)
        }
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate32to64 => {
            let bytes = match instruction.code() {
                Code::Mov_rm8_imm8 => 1,
                Code::Mov_rm16_imm16 => 2,
                Code::Mov_rm32_imm32 => 4,
                Code::Mov_rm64_imm32 => 8,
                _ => return None,
            };
            (StoreSource::Immediate(instruction.immediate(1)), bytes)
        }
        _ => return None,
    };
    let (base, displacement) = match instruction.memory_base() {
        Register::RIP => (None, instruction.memory_displacement64()),
        Register::None => (None, instruction.memory_displacement64()),
        other => (
            Some(gpr(other).filter(|g| g.2 == 8)?.0),
            instruction.memory_displacement64(),
        ),
    };
    let index = match instruction.memory_index() {
        Register::None => None,
        other => Some((
            gpr(other).filter(|g| g.2 == 8)?.0,
            instruction.memory_index_scale(),
        )),
    };
    Some(DecodedStore {
        source,
        bytes,
        base,
        index,
        displacement,
    })
}

impl DecodedStore {
    /// The value stored at `addr` (`len` bytes), if this store wrote exactly that.
    pub fn value_at(&self, registers: &[u64; 16], addr: u64, len: u64) -> Option<u64> {
        let mut target = self.displacement;
        if let Some(base) = self.base {
            target = target.wrapping_add(registers[base]);
        }
        if let Some((index, scale)) = self.index {
            target = target.wrapping_add(registers[index].wrapping_mul(u64::from(scale)));
        }
        if target != addr || self.bytes != len {
            return None;
        }
        let raw = match self.source {
            StoreSource::Register { index, shift } => registers[index] >> shift,
            StoreSource::Immediate(value) => value,
        };
        Some(if len == 8 {
            raw
        } else {
            raw & ((1u64 << (8 * len)) - 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mov_stores_are_decoded_to_their_value() {
        let mut registers = [0u64; 16];
        registers[0] = 0x1122_3344_5566_7788; // rax
        registers[3] = 0x1000; // rbx
                               // mov %rax, 0x10(%rbx)
        let store = decode_store(0x400000, &[0x48, 0x89, 0x43, 0x10]).unwrap();
        assert_eq!(
            store.value_at(&registers, 0x1010, 8),
            Some(0x1122_3344_5566_7788)
        );
        assert_eq!(store.value_at(&registers, 0x1018, 8), None);
        assert_eq!(store.value_at(&registers, 0x1010, 4), None);
        // mov %ah, (%rbx)
        let store = decode_store(0x400000, &[0x88, 0x23]).unwrap();
        assert_eq!(store.value_at(&registers, 0x1000, 1), Some(0x77));
        // movq $-2, 0x2000(%rip): absolute 0x400000 + 11 + 0x2000
        let store = decode_store(
            0x400000,
            &[
                0x48, 0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff,
            ],
        )
        .unwrap();
        assert_eq!(store.value_at(&registers, 0x40200b, 8), Some(u64::MAX - 1));
        // movl $7, (%rbx)
        let store = decode_store(0x400000, &[0xc7, 0x03, 0x07, 0, 0, 0]).unwrap();
        assert_eq!(store.value_at(&registers, 0x1000, 4), Some(7));
        // add %rax, (%rbx) is not a plain store.
        assert_eq!(decode_store(0x400000, &[0x48, 0x01, 0x03]), None);
    }
}
