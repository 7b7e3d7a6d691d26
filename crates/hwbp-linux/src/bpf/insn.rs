//! eBPF instructions and a small assembler with labels.
//!
//! Owns the encoding of `struct bpf_insn` (`include/uapi/linux/bpf.h`: 8 bytes, `code`, then
//! `dst_reg:4 | src_reg:4`, a signed 16-bit `off` and a signed 32-bit `imm`, little-endian on
//! x86_64) and the opcode values of `include/uapi/linux/bpf_common.h` and `bpf.h`
//! (`Documentation/bpf/standardization/instruction-set.rst`). A program is a [`Program`]:
//! symbolic instructions whose jumps name [`Label`]s and whose map loads name maps, so the
//! program generated for a watch set is a value that can be printed ([`fmt::Display`], in the
//! style of `bpftool prog dump xlated`) and compared, independent of the file descriptors of
//! one particular load. [`Program::encode`] resolves labels into `off` fields (relative to the
//! next instruction slot; `lddw` takes two slots) and map names into `BPF_PSEUDO_MAP_FD` loads.

use std::fmt;

/// A BPF register, `r0`..`r10` (`r10` is the read-only frame pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg(u8);

impl Reg {
    /// Return value and helper result.
    pub const R0: Reg = Reg(0);
    /// First helper argument; the program's context on entry.
    pub const R1: Reg = Reg(1);
    /// Second helper argument.
    pub const R2: Reg = Reg(2);
    /// Third helper argument.
    pub const R3: Reg = Reg(3);
    /// Fourth helper argument.
    pub const R4: Reg = Reg(4);
    /// Fifth helper argument.
    pub const R5: Reg = Reg(5);
    /// Callee-saved.
    pub const R6: Reg = Reg(6);
    /// Callee-saved.
    pub const R7: Reg = Reg(7);
    /// Callee-saved.
    pub const R8: Reg = Reg(8);
    /// Callee-saved.
    pub const R9: Reg = Reg(9);
    /// Frame pointer (read-only): the stack is the 512 bytes below it.
    pub const FP: Reg = Reg(10);

    /// The register number.
    pub fn number(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Operand width of loads and stores (`BPF_B`, `BPF_H`, `BPF_W`, `BPF_DW`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    fn code(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }

    fn c_type(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// 64-bit ALU operations (`BPF_ALU64` class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `dst += src`
    Add,
    /// `dst -= src`
    Sub,
    /// `dst |= src`
    Or,
    /// `dst &= src`
    And,
    /// `dst <<= src`
    Lsh,
    /// `dst >>= src` (logical)
    Rsh,
    /// `dst ^= src`
    Xor,
    /// `dst = src`
    Mov,
    /// `dst s>>= src` (arithmetic)
    Arsh,
}

impl AluOp {
    fn code(self) -> u8 {
        match self {
            AluOp::Add => 0x00,
            AluOp::Sub => 0x10,
            AluOp::Or => 0x40,
            AluOp::And => 0x50,
            AluOp::Lsh => 0x60,
            AluOp::Rsh => 0x70,
            AluOp::Xor => 0xa0,
            AluOp::Mov => 0xb0,
            AluOp::Arsh => 0xc0,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            AluOp::Add => "+=",
            AluOp::Sub => "-=",
            AluOp::Or => "|=",
            AluOp::And => "&=",
            AluOp::Lsh => "<<=",
            AluOp::Rsh => ">>=",
            AluOp::Xor => "^=",
            AluOp::Mov => "=",
            AluOp::Arsh => "s>>=",
        }
    }
}

/// Conditions of `BPF_JMP` jumps. Immediate operands are sign-extended to 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cond {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// unsigned `>`
    Gt,
    /// unsigned `>=`
    Ge,
    /// unsigned `<`
    Lt,
    /// unsigned `<=`
    Le,
    /// signed `>`
    Sgt,
    /// signed `>=`
    Sge,
    /// signed `<`
    Slt,
    /// signed `<=`
    Sle,
    /// `dst & src != 0`
    Set,
}

impl Cond {
    fn code(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Ge => 0x30,
            Cond::Set => 0x40,
            Cond::Ne => 0x50,
            Cond::Sgt => 0x60,
            Cond::Sge => 0x70,
            Cond::Lt => 0xa0,
            Cond::Le => 0xb0,
            Cond::Slt => 0xc0,
            Cond::Sle => 0xd0,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cond::Eq => "==",
            Cond::Ne => "!=",
            Cond::Gt => ">",
            Cond::Ge => ">=",
            Cond::Lt => "<",
            Cond::Le => "<=",
            Cond::Sgt => "s>",
            Cond::Sge => "s>=",
            Cond::Slt => "s<",
            Cond::Sle => "s<=",
            Cond::Set => "&",
        }
    }

    /// The condition that holds exactly when `self` does not (`Set` has none).
    pub fn negate(self) -> Option<Cond> {
        Some(match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Gt => Cond::Le,
            Cond::Ge => Cond::Lt,
            Cond::Lt => Cond::Ge,
            Cond::Le => Cond::Gt,
            Cond::Sgt => Cond::Sle,
            Cond::Sge => Cond::Slt,
            Cond::Slt => Cond::Sge,
            Cond::Sle => Cond::Sgt,
            Cond::Set => return None,
        })
    }
}

/// A register or a 32-bit immediate (sign-extended by the CPU-side semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    /// A register.
    Reg(Reg),
    /// An immediate.
    Imm(i32),
}

impl fmt::Display for Src {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Src::Reg(r) => r.fmt(f),
            Src::Imm(i) => i.fmt(f),
        }
    }
}

/// The kernel helpers hwbp's programs call (`enum bpf_func_id`, `include/uapi/linux/bpf.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Helper {
    /// `bpf_map_lookup_elem` (1).
    MapLookupElem,
    /// `bpf_map_update_elem` (2).
    MapUpdateElem,
    /// `bpf_ktime_get_ns` (5): `CLOCK_MONOTONIC` nanoseconds.
    KtimeGetNs,
    /// `bpf_get_smp_processor_id` (8).
    GetSmpProcessorId,
    /// `bpf_get_current_pid_tgid` (14): `tgid << 32 | pid`.
    GetCurrentPidTgid,
    /// `bpf_get_stack` (67).
    GetStack,
    /// `bpf_probe_read_user` (112).
    ProbeReadUser,
    /// `bpf_probe_read_kernel` (113).
    ProbeReadKernel,
    /// `bpf_probe_read_user_str` (114): a NUL-terminated string, truncated to the size.
    ProbeReadUserStr,
    /// `bpf_ringbuf_output` (130).
    RingbufOutput,
    /// `bpf_ringbuf_reserve` (131).
    RingbufReserve,
    /// `bpf_ringbuf_submit` (132).
    RingbufSubmit,
    /// `bpf_ringbuf_query` (134).
    RingbufQuery,
}

impl Helper {
    /// The helper's number.
    pub fn id(self) -> i32 {
        match self {
            Helper::MapLookupElem => 1,
            Helper::MapUpdateElem => 2,
            Helper::KtimeGetNs => 5,
            Helper::GetSmpProcessorId => 8,
            Helper::GetCurrentPidTgid => 14,
            Helper::GetStack => 67,
            Helper::ProbeReadUser => 112,
            Helper::ProbeReadKernel => 113,
            Helper::ProbeReadUserStr => 114,
            Helper::RingbufOutput => 130,
            Helper::RingbufReserve => 131,
            Helper::RingbufSubmit => 132,
            Helper::RingbufQuery => 134,
        }
    }

    /// The helper's C name.
    pub fn name(self) -> &'static str {
        match self {
            Helper::MapLookupElem => "bpf_map_lookup_elem",
            Helper::MapUpdateElem => "bpf_map_update_elem",
            Helper::KtimeGetNs => "bpf_ktime_get_ns",
            Helper::GetSmpProcessorId => "bpf_get_smp_processor_id",
            Helper::GetCurrentPidTgid => "bpf_get_current_pid_tgid",
            Helper::GetStack => "bpf_get_stack",
            Helper::ProbeReadUser => "bpf_probe_read_user",
            Helper::ProbeReadKernel => "bpf_probe_read_kernel",
            Helper::ProbeReadUserStr => "bpf_probe_read_user_str",
            Helper::RingbufOutput => "bpf_ringbuf_output",
            Helper::RingbufReserve => "bpf_ringbuf_reserve",
            Helper::RingbufSubmit => "bpf_ringbuf_submit",
            Helper::RingbufQuery => "bpf_ringbuf_query",
        }
    }
}

/// A jump target, created by [`Asm::label`] and placed by [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(usize);

/// One symbolic instruction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `BPF_ALU64 | op | BPF_K/BPF_X`.
    Alu64 {
        /// Operation.
        op: AluOp,
        /// Destination (and first operand).
        dst: Reg,
        /// Second operand.
        src: Src,
    },
    /// `BPF_LD | BPF_IMM | BPF_DW` (two slots): `dst = imm`.
    LdImm64 {
        /// Destination.
        dst: Reg,
        /// The 64-bit value.
        imm: u64,
    },
    /// `BPF_LD | BPF_IMM | BPF_DW` with `src_reg = BPF_PSEUDO_MAP_FD`: `dst = &map`.
    LdMap {
        /// Destination.
        dst: Reg,
        /// The map's name, resolved to an fd by [`Program::encode`].
        map: &'static str,
    },
    /// `BPF_LDX | BPF_MEM | size`: `dst = *(size *)(src + off)`.
    Ldx {
        /// Width.
        size: Size,
        /// Destination.
        dst: Reg,
        /// Base register.
        src: Reg,
        /// Offset from the base.
        off: i16,
    },
    /// `BPF_STX | BPF_MEM | size`: `*(size *)(dst + off) = src`.
    Stx {
        /// Width.
        size: Size,
        /// Base register.
        dst: Reg,
        /// Value register.
        src: Reg,
        /// Offset from the base.
        off: i16,
    },
    /// `BPF_ST | BPF_MEM | size`: `*(size *)(dst + off) = imm`.
    St {
        /// Width.
        size: Size,
        /// Base register.
        dst: Reg,
        /// Offset from the base.
        off: i16,
        /// The value (sign-extended for `DW`).
        imm: i32,
    },
    /// `BPF_STX | BPF_ATOMIC | BPF_DW`, `imm = BPF_XCHG`: `src = xchg(*(u64 *)(dst + off), src)`.
    Xchg64 {
        /// Base register.
        dst: Reg,
        /// Value in, old value out.
        src: Reg,
        /// Offset from the base.
        off: i16,
    },
    /// A jump: `goto target` (`cond == None`) or `if dst cond src goto target`.
    Jmp {
        /// The condition, `None` for an unconditional `BPF_JA`.
        cond: Option<Cond>,
        /// First operand.
        dst: Reg,
        /// Second operand.
        src: Src,
        /// Where to go.
        target: Label,
    },
    /// `BPF_JMP | BPF_CALL`: call a helper; clobbers `r1`..`r5`, result in `r0`.
    Call(Helper),
    /// `BPF_JMP | BPF_EXIT`: return `r0`.
    Exit,
}

impl Insn {
    /// Instruction slots this instruction takes (2 for 64-bit immediate loads).
    pub fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } | Insn::LdMap { .. } => 2,
            _ => 1,
        }
    }
}

/// One encoded `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble of the second byte).
    pub dst: u8,
    /// Source register (high nibble).
    pub src: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl RawInsn {
    /// The 8 bytes the kernel reads (little-endian fields).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = (self.src << 4) | (self.dst & 0x0f);
        out[2..4].copy_from_slice(&self.off.to_le_bytes());
        out[4..8].copy_from_slice(&self.imm.to_le_bytes());
        out
    }
}

/// Instruction classes and modes (`bpf_common.h`, `bpf.h`).
mod op {
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const JMP: u8 = 0x05;
    pub const ALU64: u8 = 0x07;
    pub const IMM: u8 = 0x00;
    pub const MEM: u8 = 0x60;
    pub const ATOMIC: u8 = 0xc0;
    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;
    pub const JA: u8 = 0x00;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;
    /// `BPF_XCHG` = `0xe0 | BPF_FETCH`.
    pub const XCHG: i32 = 0xe1;
    /// `BPF_PSEUDO_MAP_FD`.
    pub const PSEUDO_MAP_FD: u8 = 1;
}

/// Why a [`Program`] could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A jump names a label that was never bound.
    #[error("label {0} is used but never bound")]
    UnboundLabel(String),
    /// A jump is further than a 16-bit offset reaches.
    #[error("jump to {0} is out of range")]
    JumpOutOfRange(String),
    /// A map load names a map the caller has no fd for.
    #[error("no fd for map {0}")]
    UnknownMap(&'static str),
}

/// A finished program: symbolic instructions plus label names and positions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Program {
    insns: Vec<Insn>,
    /// Per label: its name and the instruction index it is bound to.
    labels: Vec<(String, Option<usize>)>,
}

impl Program {
    /// The symbolic instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Number of `struct bpf_insn` slots (the kernel's `insn_cnt`).
    pub fn slot_count(&self) -> usize {
        self.insns.iter().map(Insn::slots).sum()
    }

    /// Map names the program loads, in first-use order.
    pub fn maps(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for insn in &self.insns {
            if let Insn::LdMap { map, .. } = insn {
                if !out.contains(map) {
                    out.push(*map);
                }
            }
        }
        out
    }

    fn slot_offsets(&self) -> Vec<usize> {
        let mut at = 0;
        let mut out = Vec::with_capacity(self.insns.len() + 1);
        for insn in &self.insns {
            out.push(at);
            at += insn.slots();
        }
        out.push(at);
        out
    }

    /// Encodes the program, asking `map_fd` for each map's file descriptor.
    pub fn encode(
        &self,
        map_fd: &dyn Fn(&'static str) -> Option<i32>,
    ) -> Result<Vec<RawInsn>, EncodeError> {
        let slots = self.slot_offsets();
        let mut out = Vec::with_capacity(self.slot_count());
        for (index, insn) in self.insns.iter().enumerate() {
            let raw = |code: u8, dst: Reg, src: u8, off: i16, imm: i32| RawInsn {
                code,
                dst: dst.0,
                src,
                off,
                imm,
            };
            match *insn {
                Insn::Alu64 { op: alu, dst, src } => out.push(match src {
                    Src::Reg(s) => raw(op::ALU64 | alu.code() | op::X, dst, s.0, 0, 0),
                    Src::Imm(i) => raw(op::ALU64 | alu.code() | op::K, dst, 0, 0, i),
                }),
                Insn::LdImm64 { dst, imm } => {
                    out.push(raw(
                        op::LD | op::IMM | Size::DW.code(),
                        dst,
                        0,
                        0,
                        imm as i32,
                    ));
                    out.push(RawInsn {
                        imm: (imm >> 32) as i32,
                        ..RawInsn::default()
                    });
                }
                Insn::LdMap { dst, map } => {
                    let fd = map_fd(map).ok_or(EncodeError::UnknownMap(map))?;
                    out.push(raw(
                        op::LD | op::IMM | Size::DW.code(),
                        dst,
                        op::PSEUDO_MAP_FD,
                        0,
                        fd,
                    ));
                    out.push(RawInsn::default());
                }
                Insn::Ldx {
                    size,
                    dst,
                    src,
                    off,
                } => out.push(raw(op::LDX | op::MEM | size.code(), dst, src.0, off, 0)),
                Insn::Stx {
                    size,
                    dst,
                    src,
                    off,
                } => out.push(raw(op::STX | op::MEM | size.code(), dst, src.0, off, 0)),
                Insn::St {
                    size,
                    dst,
                    off,
                    imm,
                } => out.push(raw(op::ST | op::MEM | size.code(), dst, 0, off, imm)),
                Insn::Xchg64 { dst, src, off } => out.push(raw(
                    op::STX | op::ATOMIC | Size::DW.code(),
                    dst,
                    src.0,
                    off,
                    op::XCHG,
                )),
                Insn::Jmp {
                    cond,
                    dst,
                    src,
                    target,
                } => {
                    let (name, bound) = &self.labels[target.0];
                    let to = bound.ok_or_else(|| EncodeError::UnboundLabel(name.clone()))?;
                    let rel = slots[to] as i64 - (slots[index] as i64 + 1);
                    let off = i16::try_from(rel)
                        .map_err(|_| EncodeError::JumpOutOfRange(name.clone()))?;
                    let cond_code = cond.map_or(op::JA, Cond::code);
                    out.push(match src {
                        Src::Reg(s) => raw(op::JMP | cond_code | op::X, dst, s.0, off, 0),
                        Src::Imm(i) => raw(op::JMP | cond_code | op::K, dst, 0, off, i),
                    });
                }
                Insn::Call(helper) => out.push(raw(op::JMP | op::CALL, Reg::R0, 0, 0, helper.id())),
                Insn::Exit => out.push(raw(op::JMP | op::EXIT, Reg::R0, 0, 0, 0)),
            }
        }
        Ok(out)
    }

    fn label_name(&self, label: Label) -> &str {
        &self.labels[label.0].0
    }
}

fn mem(size: Size, base: Reg, off: i16) -> String {
    format!("*({} *)({base} {off:+})", size.c_type())
}

/// One instruction as text, with its jump targets by name.
fn insn_text(program: &Program, insn: &Insn) -> String {
    match insn {
        Insn::Alu64 { op, dst, src } => format!("{dst} {} {src}", op.symbol()),
        Insn::LdImm64 { dst, imm } => format!("{dst} = {imm:#x} ll"),
        Insn::LdMap { dst, map } => format!("{dst} = map[{map}] ll"),
        Insn::Ldx {
            size,
            dst,
            src,
            off,
        } => format!("{dst} = {}", mem(*size, *src, *off)),
        Insn::Stx {
            size,
            dst,
            src,
            off,
        } => format!("{} = {src}", mem(*size, *dst, *off)),
        Insn::St {
            size,
            dst,
            off,
            imm,
        } => format!("{} = {imm}", mem(*size, *dst, *off)),
        Insn::Xchg64 { dst, src, off } => {
            format!("{src} = atomic64_xchg(({dst} {off:+}), {src})")
        }
        Insn::Jmp {
            cond,
            dst,
            src,
            target,
        } => {
            let to = program.label_name(*target);
            match cond {
                None => format!("goto {to}"),
                Some(c) => format!("if {dst} {} {src} goto {to}", c.symbol()),
            }
        }
        Insn::Call(helper) => format!("call {}#{}", helper.name(), helper.id()),
        Insn::Exit => "exit".to_string(),
    }
}

impl fmt::Display for Program {
    /// One line per instruction, `slot: text`, with `label:` lines where jumps land.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.slot_offsets();
        for (index, insn) in self.insns.iter().enumerate() {
            for (name, _) in self.labels.iter().filter(|(_, at)| *at == Some(index)) {
                writeln!(f, "{name}:")?;
            }
            writeln!(f, "{:4}: {}", slots[index], insn_text(self, insn))?;
        }
        for (name, _) in self
            .labels
            .iter()
            .filter(|(_, at)| *at == Some(self.insns.len()))
        {
            writeln!(f, "{name}:")?;
        }
        Ok(())
    }
}

/// Builds a [`Program`] instruction by instruction.
#[derive(Clone, Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<(String, Option<usize>)>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Self {
        Asm::default()
    }

    /// A new, unbound label. Names need not be unique, but unique names read better.
    pub fn label(&mut self, name: impl Into<String>) -> Label {
        self.labels.push((name.into(), None));
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next instruction.
    ///
    /// # Panics
    /// If the label is already bound (a builder bug, not an input error).
    pub fn bind(&mut self, label: Label) -> &mut Self {
        let slot = &mut self.labels[label.0].1;
        assert!(
            slot.is_none(),
            "label {} bound twice",
            self.labels[label.0].0
        );
        *slot = Some(self.insns.len());
        self
    }

    /// Appends any instruction.
    pub fn push(&mut self, insn: Insn) -> &mut Self {
        self.insns.push(insn);
        self
    }

    /// `dst = imm`
    pub fn mov(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.alu(AluOp::Mov, dst, Src::Imm(imm))
    }

    /// `dst = src`
    pub fn mov_reg(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.alu(AluOp::Mov, dst, Src::Reg(src))
    }

    /// `dst op= src`
    pub fn alu(&mut self, op: AluOp, dst: Reg, src: Src) -> &mut Self {
        self.push(Insn::Alu64 { op, dst, src })
    }

    /// `dst = imm` (64-bit immediate, two slots).
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) -> &mut Self {
        self.push(Insn::LdImm64 { dst, imm })
    }

    /// `dst = &map`.
    pub fn ld_map(&mut self, dst: Reg, map: &'static str) -> &mut Self {
        self.push(Insn::LdMap { dst, map })
    }

    /// `dst = *(size *)(src + off)`
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(Insn::Ldx {
            size,
            dst,
            src,
            off,
        })
    }

    /// `*(size *)(dst + off) = src`
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(Insn::Stx {
            size,
            dst,
            src,
            off,
        })
    }

    /// `*(size *)(dst + off) = imm`
    pub fn st(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(Insn::St {
            size,
            dst,
            off,
            imm,
        })
    }

    /// `dst = fp + off`: a pointer into the stack.
    pub fn stack_ptr(&mut self, dst: Reg, off: i16) -> &mut Self {
        self.mov_reg(dst, Reg::FP)
            .alu(AluOp::Add, dst, Src::Imm(off.into()))
    }

    /// `src = xchg(*(u64 *)(dst + off), src)`
    pub fn xchg64(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(Insn::Xchg64 { dst, src, off })
    }

    /// `goto target`
    pub fn ja(&mut self, target: Label) -> &mut Self {
        self.push(Insn::Jmp {
            cond: None,
            dst: Reg::R0,
            src: Src::Imm(0),
            target,
        })
    }

    /// `if dst cond src goto target`
    pub fn jmp(&mut self, cond: Cond, dst: Reg, src: Src, target: Label) -> &mut Self {
        self.push(Insn::Jmp {
            cond: Some(cond),
            dst,
            src,
            target,
        })
    }

    /// `call helper`
    pub fn call(&mut self, helper: Helper) -> &mut Self {
        self.push(Insn::Call(helper))
    }

    /// `exit`
    pub fn exit(&mut self) -> &mut Self {
        self.push(Insn::Exit)
    }

    /// The finished program.
    pub fn finish(self) -> Program {
        Program {
            insns: self.insns,
            labels: self.labels,
        }
    }
}

/// Flattens encoded instructions into the bytes `BPF_PROG_LOAD` reads.
pub fn to_bytes(insns: &[RawInsn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(asm: Asm, fd: i32) -> Vec<u8> {
        to_bytes(&asm.finish().encode(&|_| Some(fd)).unwrap())
    }

    /// The encodings of `docs/experiments/bpf-on-watchpoint.py` (its `insn()` packs
    /// `<BBhi`: code, src << 4 | dst, off, imm).
    #[test]
    fn encodings_match_the_python_experiment() {
        let mut asm = Asm::new();
        asm.mov_reg(Reg::R6, Reg::R1) // MOVX 6, 1
            .ldx(Size::DW, Reg::R7, Reg::R6, 176) // LDXDW 7, 6, 176
            .st(Size::DW, Reg::FP, -8, 0) // STDW 10, -8, 0
            .stack_ptr(Reg::R1, -8) // MOVX 1, 10; ADDK 1, -8
            .mov(Reg::R2, 8) // MOVK 2, 8
            .call(Helper::ProbeReadUser) // CALL 112
            .st(Size::W, Reg::FP, -12, 2) // STW 10, -12, 2
            .stx(Size::DW, Reg::FP, -8, Reg::R7) // STXDW 10, 7, -8
            .ld_map(Reg::R1, "m") // ld_map(1, fd)
            .exit();
        let expect: Vec<[u8; 8]> = vec![
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0],
            [0x79, 0x67, 0xb0, 0x00, 0, 0, 0, 0],
            [0x7a, 0x0a, 0xf8, 0xff, 0, 0, 0, 0],
            [0xbf, 0xa1, 0, 0, 0, 0, 0, 0],
            [0x07, 0x01, 0, 0, 0xf8, 0xff, 0xff, 0xff],
            [0xb7, 0x02, 0, 0, 8, 0, 0, 0],
            [0x85, 0x00, 0, 0, 112, 0, 0, 0],
            [0x62, 0x0a, 0xf4, 0xff, 2, 0, 0, 0],
            [0x7b, 0x7a, 0xf8, 0xff, 0, 0, 0, 0],
            [0x18, 0x11, 0, 0, 7, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0x95, 0, 0, 0, 0, 0, 0, 0],
        ];
        assert_eq!(bytes_of(asm, 7), expect.concat());
    }

    #[test]
    fn wide_immediates_atomics_and_jumps_encode_exactly() {
        let mut asm = Asm::new();
        let out = asm.label("out");
        asm.ld_imm64(Reg::R1, 0x1122_3344_5566_7788)
            .jmp(Cond::Ne, Reg::R7, Src::Reg(Reg::R1), out)
            .xchg64(Reg::R0, 0, Reg::R7)
            .jmp(Cond::Slt, Reg::R1, Src::Imm(-1), out)
            .alu(AluOp::Arsh, Reg::R1, Src::Imm(32))
            .bind(out)
            .exit();
        let expect: Vec<[u8; 8]> = vec![
            [0x18, 0x01, 0, 0, 0x88, 0x77, 0x66, 0x55],
            [0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11],
            // jne r7, r1, +3 (over xchg, jslt, arsh)
            [0x5d, 0x17, 3, 0, 0, 0, 0, 0],
            [0xdb, 0x70, 0, 0, 0xe1, 0, 0, 0],
            [0xc5, 0x01, 1, 0, 0xff, 0xff, 0xff, 0xff],
            [0xc7, 0x01, 0, 0, 32, 0, 0, 0],
            [0x95, 0, 0, 0, 0, 0, 0, 0],
        ];
        assert_eq!(bytes_of(asm, 3), expect.concat());
    }

    #[test]
    fn backward_jumps_and_text() {
        let mut asm = Asm::new();
        let top = asm.label("top");
        asm.bind(top)
            .mov(Reg::R0, 0)
            .ld_map(Reg::R1, "stats")
            .ja(top)
            .exit();
        let program = asm.finish();
        let raw = program.encode(&|_| Some(9)).unwrap();
        // ja at slot 3 back to slot 0: off = 0 - 4.
        assert_eq!(raw[3].to_bytes(), [0x05, 0, 0xfc, 0xff, 0, 0, 0, 0]);
        assert_eq!(
            program.to_string(),
            "top:\n   0: r0 = 0\n   1: r1 = map[stats] ll\n   3: goto top\n   4: exit\n"
        );
        assert_eq!(program.maps(), vec!["stats"]);
        assert_eq!(program.slot_count(), 5);
    }

    #[test]
    fn unbound_labels_and_unknown_maps_are_errors() {
        let mut asm = Asm::new();
        let nowhere = asm.label("nowhere");
        asm.ja(nowhere);
        assert_eq!(
            asm.finish().encode(&|_| Some(1)),
            Err(EncodeError::UnboundLabel("nowhere".into()))
        );
        let mut asm = Asm::new();
        asm.ld_map(Reg::R1, "ring");
        assert_eq!(
            asm.finish().encode(&|_| None),
            Err(EncodeError::UnknownMap("ring"))
        );
    }
}
