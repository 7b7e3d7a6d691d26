//! A function's local variable as a watch can follow it: where its frame starts, how to find
//! the frame's CFA there, and where the variable lives relative to it.
//!
//! `FUNC::LOCAL` (or `'file.c'::FUNC::LOCAL`) names a `DW_TAG_variable` or
//! `DW_TAG_formal_parameter` inside the out-of-line `DW_TAG_subprogram` FUNC (DWARF 5 §3.3,
//! at any `DW_TAG_lexical_block` depth). Its `DW_AT_location` must be `DW_OP_fbreg N` (§2.5.1.2)
//! over a frame base (`DW_AT_frame_base`) of `DW_OP_call_frame_cfa` (gcc) or `DW_OP_reg*`/
//! `DW_OP_breg*` (clang), either directly or, in a location list (§2.6.2), in the entry that
//! covers the arming address. The arming address is where gdb's `break FUNC` stops: the second
//! line-table row of the function (the end of the prologue), so the frame is set up and a
//! watch set there sees what gdb's sees. The CFA rule at that address comes from `.eh_frame`
//! (gimli's unwinder, §6.4: `CFA = REG + OFFSET`); the return address is at `CFA - 8` and
//! `rsp == CFA` right after the function returns (the x86-64 System V ABI).
//!
//! Refused with one line each: a local in a register, optimized out, a function inlined
//! everywhere, a location expression this reader does not evaluate.

use std::path::Path;

use gimli::{AttributeValue, Reader, UnitOffset};
use object::{Object, ObjectSection};

use crate::types::{file_matches, type_ref, Language, ModuleDebug, Type, R};

/// Where the frame base (`DW_AT_frame_base`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameBase {
    /// `DW_OP_call_frame_cfa`.
    Cfa,
    /// A register plus an offset (`DW_OP_reg*` is offset 0; `DW_OP_breg*`).
    Register {
        /// DWARF register number (x86-64: 6 = rbp, 7 = rsp).
        register: u16,
        /// Added to the register.
        offset: i64,
    },
}

/// `CFA = register + offset` at the arming address (from `.eh_frame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfaRule {
    /// DWARF register number.
    pub register: u16,
    /// Added to the register.
    pub offset: i64,
}

/// A local variable of an out-of-line function, at link-time addresses.
#[derive(Debug, Clone)]
pub struct FrameLocal {
    /// The function as named (`recurse`).
    pub function: String,
    /// The variable's own name.
    pub name: String,
    /// The function's first instruction (`DW_AT_low_pc`).
    pub entry: u64,
    /// Where a frame is armed: the end of the prologue (the line table's second row).
    pub arm_pc: u64,
    /// The CFA rule at [`arm_pc`](Self::arm_pc).
    pub cfa: CfaRule,
    /// The frame base the variable's location is relative to.
    pub base: FrameBase,
    /// `DW_OP_fbreg`'s offset from the frame base.
    pub offset: i64,
    /// The variable's type.
    pub ty: Option<Type>,
    /// Its unit's language.
    pub language: Language,
}

/// x86-64 registers in hardware encoding order (`rax`, `rcx`, `rdx`, `rbx`, `rsp`, `rbp`,
/// `rsi`, `rdi`, `r8`-`r15`): the value of DWARF register `dwarf` (System V psABI, Table 3.36).
pub fn dwarf_register(registers: &[u64; 16], dwarf: u16) -> Option<u64> {
    const ENCODING_OF_DWARF: [usize; 16] = [0, 2, 1, 3, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];
    ENCODING_OF_DWARF
        .get(usize::from(dwarf))
        .map(|&i| registers[i])
}

impl FrameLocal {
    /// The frame's CFA and the variable's address for a thread stopped at
    /// [`arm_pc`](Self::arm_pc) with `registers` (encoding order, see [`dwarf_register`]).
    pub fn locate(&self, registers: &[u64; 16]) -> Option<(u64, u64)> {
        let cfa =
            dwarf_register(registers, self.cfa.register)?.wrapping_add_signed(self.cfa.offset);
        let base = match self.base {
            FrameBase::Cfa => cfa,
            FrameBase::Register { register, offset } => {
                dwarf_register(registers, register)?.wrapping_add_signed(offset)
            }
        };
        Some((cfa, base.wrapping_add_signed(self.offset)))
    }
}

/// Why a local cannot be followed. One line each, naming what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// No function of that name with that local.
    #[error("no function '{function}' with a local '{name}' in the debug info of {module}")]
    NotFound {
        /// The function.
        function: String,
        /// The local.
        name: String,
        /// The module searched.
        module: String,
    },
    /// `DW_OP_reg*`.
    #[error("'{name}' lives in a register in {function}; watch it with -l at an address, or build with -O0")]
    Register {
        /// The local.
        name: String,
        /// The function.
        function: String,
    },
    /// No location at the arming address.
    #[error("'{name}' was optimized out of {function}; build with -O0 to watch it")]
    OptimizedOut {
        /// The local.
        name: String,
        /// The function.
        function: String,
    },
    /// `DW_OP_stack_value`: a value computed from registers, not memory.
    #[error("'{name}' has no memory in {function} where its frame is armed: its value is computed from registers (DW_OP_stack_value); build with -O0 to watch it")]
    Computed {
        /// The local.
        name: String,
        /// The function.
        function: String,
    },
    /// Only inlined copies.
    #[error("{function} is inlined everywhere, so no frame of its own holds '{name}'; build with -fno-inline or mark it noinline")]
    Inlined {
        /// The local.
        name: String,
        /// The function.
        function: String,
    },
    /// A location or frame base this reader does not evaluate.
    #[error("the location of '{name}' in {function} is {what}, which hwbp does not evaluate; build with -O0")]
    Unsupported {
        /// The local.
        name: String,
        /// The function.
        function: String,
        /// What it is.
        what: String,
    },
    /// No CFI for the arming address.
    #[error("no call-frame information (.eh_frame) for {function} at {pc:#x} in {module}, so its frame cannot be found")]
    NoCfi {
        /// The function.
        function: String,
        /// The address.
        pc: u64,
        /// The module.
        module: String,
    },
}

/// Finds local `name` of function `function` (`::`-joined) in `debug`, in a unit named like
/// `file` when given.
pub fn find_local(
    debug: &ModuleDebug,
    file: Option<&str>,
    function: &str,
    name: &str,
) -> Result<FrameLocal, LocalError> {
    let (dwarf, units) = debug.dwarf_units();
    let unsupported = |what: String| LocalError::Unsupported {
        name: name.to_string(),
        function: function.to_string(),
        what,
    };
    let mut inlined = false;
    for (unit_index, unit) in units.iter().enumerate() {
        if let Some(file) = file {
            let unit_name = unit
                .name
                .as_ref()
                .and_then(|n| n.to_string_lossy().ok().map(|s| s.into_owned()))
                .unwrap_or_default();
            if !file_matches(&unit_name, file) {
                continue;
            }
        }
        let Some(found) =
            find_in_unit(dwarf, unit, function, name).map_err(|e| unsupported(e.to_string()))?
        else {
            continue;
        };
        let Found {
            low_pc,
            high_pc,
            frame_base,
            location,
            ty,
        } = found;
        let Some(low_pc) = low_pc else {
            inlined = true;
            continue;
        };
        let arm_pc = end_of_prologue(unit, low_pc, high_pc).unwrap_or(low_pc);
        let base = match frame_base {
            Some(AttributeValue::Exprloc(expr)) => {
                let mut ops = expr.operations(unit.encoding());
                match ops.next() {
                    Ok(Some(gimli::Operation::CallFrameCFA)) => FrameBase::Cfa,
                    Ok(Some(gimli::Operation::Register { register })) => FrameBase::Register {
                        register: register.0,
                        offset: 0,
                    },
                    Ok(Some(gimli::Operation::RegisterOffset {
                        register, offset, ..
                    })) => FrameBase::Register {
                        register: register.0,
                        offset,
                    },
                    _ => return Err(unsupported("a frame base of another form".into())),
                }
            }
            _ => return Err(unsupported("relative to a missing frame base".into())),
        };
        let (arm_pc, expr) = match location {
            Some(AttributeValue::Exprloc(expr)) => (arm_pc, expr),
            Some(value) => {
                let Ok(Some(mut list)) = dwarf.attr_locations(unit, value) else {
                    return Err(unsupported("an unreadable location list".into()));
                };
                let mut first_in_function = None;
                let mut covering = None;
                while let Ok(Some(entry)) = list.next() {
                    if entry.range.begin <= arm_pc && arm_pc < entry.range.end {
                        covering = Some((arm_pc, entry.data.clone()));
                    }
                    if first_in_function.is_none() && entry.range.begin >= low_pc {
                        first_in_function = Some((entry.range.begin, entry.data));
                    }
                }
                match covering.or(first_in_function) {
                    Some(found) => found,
                    None => {
                        return Err(LocalError::OptimizedOut {
                            name: name.to_string(),
                            function: function.to_string(),
                        })
                    }
                }
            }
            None => {
                return Err(LocalError::OptimizedOut {
                    name: name.to_string(),
                    function: function.to_string(),
                })
            }
        };
        let computed = {
            let mut ops = expr.clone().operations(unit.encoding());
            let mut computed = false;
            while let Ok(Some(op)) = ops.next() {
                computed |= matches!(
                    op,
                    gimli::Operation::StackValue | gimli::Operation::ImplicitValue { .. }
                );
            }
            computed
        };
        if computed {
            return Err(LocalError::Computed {
                name: name.to_string(),
                function: function.to_string(),
            });
        }
        let mut ops = expr.operations(unit.encoding());
        let offset = match ops.next() {
            Ok(Some(gimli::Operation::FrameOffset { offset })) => offset,
            Ok(Some(gimli::Operation::Register { .. })) => {
                return Err(LocalError::Register {
                    name: name.to_string(),
                    function: function.to_string(),
                })
            }
            Ok(Some(_)) => {
                return Err(unsupported(
                    "a DWARF expression not relative to the frame base".into(),
                ))
            }
            _ => return Err(unsupported("an empty DWARF expression".into())),
        };
        if !matches!(ops.next(), Ok(None)) {
            return Err(unsupported(
                "a DWARF expression of several operations".into(),
            ));
        }
        let cfa = cfa_rule(debug.path(), arm_pc).ok_or_else(|| LocalError::NoCfi {
            function: function.to_string(),
            pc: arm_pc,
            module: debug.path().display().to_string(),
        })?;
        return Ok(FrameLocal {
            function: function.to_string(),
            name: name.to_string(),
            entry: low_pc,
            arm_pc,
            cfa,
            base,
            offset,
            ty: ty.map(|t| debug.type_at(unit_index, t)),
            language: Language::of_unit(unit),
        });
    }
    if inlined {
        return Err(LocalError::Inlined {
            name: name.to_string(),
            function: function.to_string(),
        });
    }
    Err(LocalError::NotFound {
        function: function.to_string(),
        name: name.to_string(),
        module: debug.path().display().to_string(),
    })
}

/// What a unit says about the function and its local.
struct Found {
    /// `None` for an abstract (inlined) instance only.
    low_pc: Option<u64>,
    high_pc: Option<u64>,
    frame_base: Option<AttributeValue<R>>,
    location: Option<AttributeValue<R>>,
    ty: Option<UnitOffset>,
}

fn find_in_unit(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    function: &str,
    name: &str,
) -> gimli::Result<Option<Found>> {
    let name_of = |entry: &gimli::DebuggingInformationEntry<R>| -> Option<String> {
        let value = entry.attr_value(gimli::DW_AT_name)?;
        let s = dwarf.attr_string(unit, value).ok()?;
        s.to_string_lossy().ok().map(|s| s.into_owned())
    };
    let mut cursor = unit.entries();
    // (depth of the subprogram, what it says) while inside FUNC.
    let mut inside: Option<(isize, Found)> = None;
    let mut abstract_only: Option<Found> = None;
    // Enclosing namespaces and classes, and the qualified names of the functions declared
    // so far (a C++ method defined outside its class names its declaration).
    let mut scopes: Vec<(isize, String)> = Vec::new();
    let mut declared: std::collections::HashMap<UnitOffset, String> = Default::default();
    while let Some(entry) = cursor.next_dfs()? {
        let depth = entry.depth();
        if inside.as_ref().is_some_and(|(d, _)| depth <= *d) {
            let (_, found) = inside.take().expect("checked");
            if found.low_pc.is_none() {
                abstract_only.get_or_insert(found);
            }
        }
        while scopes.last().is_some_and(|(d, _)| *d >= depth) {
            scopes.pop();
        }
        let is_function = entry.tag() == gimli::DW_TAG_subprogram && inside.is_none() && {
            let own = match name_of(entry) {
                Some(own) => {
                    let mut parts: Vec<&str> = scopes.iter().map(|(_, n)| n.as_str()).collect();
                    parts.push(&own);
                    Some(parts.join("::"))
                }
                None => match entry
                    .attr_value(gimli::DW_AT_specification)
                    .or_else(|| entry.attr_value(gimli::DW_AT_abstract_origin))
                {
                    Some(AttributeValue::UnitRef(target)) => declared.get(&target).cloned(),
                    _ => None,
                },
            };
            if let Some(own) = &own {
                declared.insert(entry.offset(), own.clone());
            }
            own.is_some_and(|own| own == function || own.rsplit("::").next() == Some(function))
        };
        match entry.tag() {
            gimli::DW_TAG_namespace
            | gimli::DW_TAG_structure_type
            | gimli::DW_TAG_class_type
            | gimli::DW_TAG_union_type
                if entry.has_children() =>
            {
                let own = name_of(entry).unwrap_or_else(|| "(anonymous namespace)".into());
                scopes.push((depth, own));
            }
            gimli::DW_TAG_subprogram if is_function => {
                let low_pc = match entry.attr_value(gimli::DW_AT_low_pc) {
                    Some(v) => dwarf.attr_address(unit, v)?,
                    None => None,
                };
                let high_pc = match (entry.attr_value(gimli::DW_AT_high_pc), low_pc) {
                    (Some(AttributeValue::Udata(len)), Some(low)) => Some(low + len),
                    (Some(v), _) => dwarf.attr_address(unit, v)?,
                    _ => None,
                };
                inside = Some((
                    depth,
                    Found {
                        low_pc,
                        high_pc,
                        frame_base: entry.attr_value(gimli::DW_AT_frame_base),
                        location: None,
                        ty: None,
                    },
                ));
            }
            gimli::DW_TAG_variable | gimli::DW_TAG_formal_parameter
                if inside.is_some() && name_of(entry).as_deref() == Some(name) =>
            {
                let (_, mut found) = inside.take().expect("checked");
                found.location = entry.attr_value(gimli::DW_AT_location);
                found.ty = type_ref(entry);
                if found.low_pc.is_some() {
                    return Ok(Some(found));
                }
                abstract_only.get_or_insert(found);
            }
            _ => {}
        }
    }
    Ok(abstract_only)
}

/// gdb's prologue end from the line table: the first row after `low_pc` (inside the
/// function) whose line differs from the first row's.
fn end_of_prologue(unit: &gimli::Unit<R>, low_pc: u64, high_pc: Option<u64>) -> Option<u64> {
    let program = unit.line_program.clone()?;
    let mut rows = program.rows();
    let mut first_line = None;
    while let Ok(Some((_, row))) = rows.next_row() {
        let addr = row.address();
        if row.end_sequence() || addr < low_pc || high_pc.is_some_and(|h| addr >= h) {
            continue;
        }
        let line = row.line().map(|l| l.get());
        match first_line {
            None if addr == low_pc => first_line = Some(line),
            Some(first) if addr > low_pc && line != first && row.is_stmt() => return Some(addr),
            _ => {}
        }
    }
    None
}

/// `CFA = REG + OFFSET` at link-time `pc`, from the module's `.eh_frame`.
fn cfa_rule(module: &Path, pc: u64) -> Option<CfaRule> {
    let data = std::fs::read(module).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let section = file.section_by_name(".eh_frame")?;
    let bytes = section.uncompressed_data().ok()?;
    let eh_frame = gimli::EhFrame::new(&bytes, gimli::LittleEndian);
    let mut bases = gimli::BaseAddresses::default().set_eh_frame(section.address());
    if let Some(text) = file.section_by_name(".text") {
        bases = bases.set_text(text.address());
    }
    let mut context = Box::new(gimli::UnwindContext::new());
    let row = gimli::UnwindSection::unwind_info_for_address(
        &eh_frame,
        &bases,
        &mut context,
        pc,
        gimli::UnwindSection::cie_from_offset,
    )
    .ok()?;
    match row.cfa() {
        gimli::CfaRule::RegisterAndOffset { register, offset } => Some(CfaRule {
            register: register.0,
            offset: *offset,
        }),
        gimli::CfaRule::Expression(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dwarf_registers_map_to_the_encoding_order() {
        let regs: [u64; 16] = std::array::from_fn(|i| i as u64 * 100);
        // DWARF 7 is rsp (encoding 4), 6 is rbp (5), 1 is rdx (2), 16 is the return address.
        assert_eq!(dwarf_register(&regs, 7), Some(400));
        assert_eq!(dwarf_register(&regs, 6), Some(500));
        assert_eq!(dwarf_register(&regs, 1), Some(200));
        assert_eq!(dwarf_register(&regs, 16), None);
    }
}
