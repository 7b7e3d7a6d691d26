//! Evaluating a watch expression ([`crate::expr::Expr`]) to the address, length and type of
//! the memory it names, over the DWARF of a process's modules ([`crate::types::ModuleDebug`])
//! and a memory reader for the pointers it goes through.
//!
//! Semantics follow C and gdb's `watch`: `a.f` adds the member's offset, `a[i]` the element
//! size times `i` (an array's constant index is checked against its bounds; a pointer's is
//! not), `*p`/`p->f`/`p[i]` read the pointer (8 bytes) from memory and go to its value, an
//! array decays to its first element under `*`, and `*(T *)0xADDR`, `*(T *)&sym` give `T` at
//! that address. Every pointer read is recorded, in order, in
//! [`Evaluated::pointer_reads`]: gdb's value chain, which a watcher also watches so it can
//! re-evaluate when one changes. A variable's address is its `DW_OP_addr` plus the load bias
//! of its module ([`LoadedModule`]). Names are looked up in the modules in order (executable
//! first); with no DWARF for a name, a bare symbol falls back to the process's ELF symbol
//! table, typeless (`ty: None`, the symbol's size).
//!
//! ```no_run
//! use hwbp_symbols::eval::{evaluate, LoadedModule, Scope};
//! use hwbp_symbols::ProcessSymbols;
//!
//! let symbols = ProcessSymbols::load(1234).unwrap();
//! let modules = LoadedModule::for_process(&symbols);
//! let scope = Scope { modules: &modules, symbols: Some(&symbols) };
//! let expr = hwbp_symbols::expr::parse("cur->peer->state").unwrap();
//! let mem = std::fs::File::open("/proc/1234/mem").unwrap();
//! let mut read = |addr: u64, buf: &mut [u8]| {
//!     std::os::unix::fs::FileExt::read_exact_at(&mem, buf, addr).is_ok()
//! };
//! let value = evaluate(&expr, &scope, &mut read).unwrap();
//! println!("{} at {:#x}, {} bytes, {} pointer(s) read", value.expr, value.addr, value.len,
//!          value.pointer_reads.len());
//! ```

use std::fmt;
use std::sync::Arc;

use crate::expr::{CastType, Expr, NamePath};
use crate::types::{
    DwarfError, Language, ModuleDebug, Type, TypeKind, TypeRef, VarLocation, Variable,
};
use crate::{ModuleInfo, ProcessSymbols};

/// One module's DWARF at its place in a process.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    /// The DWARF.
    pub debug: Arc<ModuleDebug>,
    /// Runtime address minus link-time address (0 for `ET_EXEC` or a file read at rest).
    pub bias: u64,
}

impl LoadedModule {
    /// One module of a process ([`ProcessSymbols::modules`]) with its DWARF, to load the
    /// executable first and libraries only when a name is not found there (indexing libc's
    /// DWARF takes seconds).
    pub fn load(module: &ModuleInfo) -> Result<LoadedModule, DwarfError> {
        Ok(LoadedModule {
            debug: Arc::new(ModuleDebug::load(&module.path)?),
            bias: module.bias,
        })
    }

    /// The modules of a process that have DWARF (their own or a separate debug file), in the
    /// process's order (executable first), with their load biases. Modules without DWARF are
    /// left out; their names still resolve typeless through [`Scope::symbols`].
    pub fn for_process(symbols: &ProcessSymbols) -> Vec<LoadedModule> {
        symbols
            .modules()
            .into_iter()
            .filter_map(|m| LoadedModule::load(&m).ok())
            .collect()
    }
}

/// Where names are looked up.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Modules with DWARF, executable first.
    pub modules: &'a [LoadedModule],
    /// The process's symbol tables, for names without DWARF (typeless).
    pub symbols: Option<&'a ProcessSymbols>,
}

/// One pointer the expression read from memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointerRead {
    /// Where the pointer is.
    pub addr: u64,
    /// Its size (8).
    pub len: u64,
    /// The value read.
    pub value: u64,
}

/// What an expression names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated {
    /// The expression's canonical text.
    pub expr: String,
    /// Runtime address of the first byte.
    pub addr: u64,
    /// Bytes: the type's size (the symbol's size without a type).
    pub len: u64,
    /// The type; `None` without DWARF.
    pub ty: Option<Type>,
    /// Every pointer read while evaluating, in order.
    pub pointer_reads: Vec<PointerRead>,
    /// The expression of each pointer in [`pointer_reads`](Self::pointer_reads) (`cur`,
    /// `cur->peer`), to name its watch.
    pub pointer_exprs: Vec<String>,
    /// The language of the expression's root variable (C for casts of constants), for
    /// [`crate::value::format_value_in`].
    pub language: Language,
}

impl Evaluated {
    /// The expression as member paths start from it: its text, parenthesized when it
    /// starts with `*` or `&` (`(*head).next`).
    pub fn member_root(&self) -> String {
        if self.expr.starts_with('*') || self.expr.starts_with('&') {
            format!("({})", self.expr)
        } else {
            self.expr.clone()
        }
    }

    /// The member covering byte `offset` of the value: `cfg.limits[2].max`, or
    /// `expr+0x10` without a type.
    pub fn member_at(&self, offset: u64) -> String {
        match &self.ty {
            Some(ty) => ty.member_path(&self.member_root(), offset),
            None if offset == 0 => self.expr.clone(),
            None => format!("{}+{offset:#x}", self.expr),
        }
    }
}

/// Why an expression cannot be watched. Each message is one line naming the problem and what
/// would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// No variable of that name.
    #[error(
        "no variable '{name}' in the debug info or symbols of the program{}",
        did_you_mean(near)
    )]
    UnknownVariable {
        /// The name.
        name: String,
        /// Close names.
        near: Vec<String>,
    },
    /// Several file-scoped statics of that name.
    #[error("'{name}' is a static variable in several files ({}): name one, e.g. '{}'::{name}", files.join(", "), files.first().map(String::as_str).unwrap_or("file.c"))]
    Ambiguous {
        /// The name.
        name: String,
        /// The files (basenames) defining one.
        files: Vec<String>,
    },
    /// The variable has no fixed address.
    #[error("'{name}' has no fixed address: it {why}; watch a global or static variable, or evaluate once at a stop and watch the address with -l/--location")]
    NoFixedAddress {
        /// The variable.
        name: String,
        /// `lives in a register`, ...
        why: String,
    },
    /// `Class::member` for a non-static data member.
    #[error("{class}::{member} is a non-static member of {ty}: it has no address of its own; watch it in an object of that type (OBJECT.{member} or POINTER->{member})")]
    NotStatic {
        /// The class as written.
        class: String,
        /// The member.
        member: String,
        /// The class's type name.
        ty: String,
    },
    /// `.f`/`->f` with an unknown member.
    #[error("{expr} has no member '{member}': {ty} has {}", list_members(members))]
    UnknownMember {
        /// The expression left of the operator.
        expr: String,
        /// The member asked for.
        member: String,
        /// Its type.
        ty: String,
        /// The members it has.
        members: Vec<String>,
    },
    /// `.f` on a non-struct, or `->f` on a pointer to a non-struct.
    #[error("{expr} is {ty}, not a struct or union: '.{member}' needs a struct{hint}")]
    NotStruct {
        /// The expression.
        expr: String,
        /// The member asked for.
        member: String,
        /// Its type.
        ty: String,
        /// A suggestion (`; use ->` for a pointer).
        hint: String,
    },
    /// `[i]` on something that is neither an array nor a pointer.
    #[error("cannot index {expr}: it is {ty}, not an array or a pointer")]
    NotIndexable {
        /// The expression.
        expr: String,
        /// Its type.
        ty: String,
    },
    /// `*e`/`e->f` on a non-pointer.
    #[error("cannot dereference {expr}: it is {ty}, not a pointer{hint}")]
    NotPointer {
        /// The expression.
        expr: String,
        /// Its type.
        ty: String,
        /// A suggestion.
        hint: String,
    },
    /// `void *` dereferenced.
    #[error("cannot dereference {expr}: it is a void pointer; cast it to the pointed-to type: *(T *){expr}")]
    VoidPointer {
        /// The expression.
        expr: String,
    },
    /// A constant index past an array's end.
    #[error("index {index} is out of range for {expr}: {ty} has elements 0..={}", count.saturating_sub(1))]
    OutOfRange {
        /// The array.
        expr: String,
        /// Its type.
        ty: String,
        /// The index asked for.
        index: u64,
        /// Elements.
        count: u64,
    },
    /// A NULL pointer on the way.
    #[error("{expr} is a NULL pointer, so {whole} does not exist yet; watch {expr} itself, or evaluate when it is set")]
    NullPointer {
        /// The pointer expression.
        expr: String,
        /// The whole expression.
        whole: String,
    },
    /// A pointer could not be read.
    #[error("cannot read {expr} at {addr:#x} (unmapped memory, or the process is gone)")]
    Unreadable {
        /// The pointer expression.
        expr: String,
        /// Its address.
        addr: u64,
    },
    /// A cast to a type the debug info does not have.
    #[error("unknown type '{name}' in the cast: not a C base type and no struct, union, enum or typedef of that name in the debug info; use e.g. *(unsigned long *)ADDR or *(struct NAME *)ADDR")]
    UnknownType {
        /// The type name.
        name: String,
    },
    /// A cast to a non-pointer type.
    #[error(
        "cast to '{ty}' is not a pointer, so there is no memory to watch: write *({ty} *){expr}"
    )]
    CastNotPointer {
        /// The type.
        ty: String,
        /// The operand.
        expr: String,
    },
    /// The expression is a value, not memory (`&x`, `(int *)0x10`).
    #[error("{expr} is a value, not a location in memory: dereference it (*{expr}) to watch what it points at")]
    NotLvalue {
        /// The expression.
        expr: String,
    },
    /// An operator on a variable without type information.
    #[error("{expr} has no type information (no DWARF for it): only the whole symbol can be watched; rebuild with -g, install its debug file, or cast: *(T *)&{expr}")]
    NoType {
        /// The typeless expression.
        expr: String,
    },
    /// The value has size 0 (an incomplete type).
    #[error("{expr} has type {ty} of unknown size: cast it to a complete type, e.g. *(unsigned long *)&{expr}")]
    NoSize {
        /// The expression.
        expr: String,
        /// Its type.
        ty: String,
    },
}

fn did_you_mean(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.join(", "))
    }
}

fn list_members(members: &[String]) -> String {
    if members.is_empty() {
        "no members".to_string()
    } else {
        members.join(", ")
    }
}

/// An intermediate value.
enum Value {
    /// Memory at `addr` of type `ty` (`None`: typeless symbol of `size` bytes).
    Place {
        addr: u64,
        ty: Option<Type>,
        size: u64,
        module: Option<usize>,
    },
    /// A pointer value (from `&x` or a cast).
    Pointer {
        value: u64,
        target: TypeRef,
        module: Option<usize>,
    },
    /// An integer constant.
    Int(u64),
}

struct Evaluator<'a, 'r> {
    scope: &'a Scope<'a>,
    read: &'r mut dyn FnMut(u64, &mut [u8]) -> bool,
    reads: Vec<PointerRead>,
    read_exprs: Vec<String>,
    whole: String,
    language: Option<Language>,
    /// A name that stands for memory the caller placed ([`evaluate_rooted`]).
    root: Option<(&'a NamePath, u64, &'a Type)>,
}

/// Evaluates `expr`: the memory it names, its type, and the pointers read on the way.
/// `read(addr, buf)` fills `buf` from the target's memory and says whether it could.
pub fn evaluate(
    expr: &Expr,
    scope: &Scope<'_>,
    read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
) -> Result<Evaluated, EvalError> {
    evaluate_inner(expr, scope, read, None)
}

/// [`evaluate`] with `root` (a local variable, say) standing for a value of type `ty` at
/// `addr`: `FUNC::cfg.len` evaluated for one frame's `FUNC::cfg`.
pub fn evaluate_rooted(
    expr: &Expr,
    scope: &Scope<'_>,
    read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
    root: &NamePath,
    addr: u64,
    ty: &Type,
) -> Result<Evaluated, EvalError> {
    evaluate_inner(expr, scope, read, Some((root, addr, ty)))
}

fn evaluate_inner<'a>(
    expr: &Expr,
    scope: &'a Scope<'a>,
    read: &mut dyn FnMut(u64, &mut [u8]) -> bool,
    root: Option<(&'a NamePath, u64, &'a Type)>,
) -> Result<Evaluated, EvalError> {
    let mut evaluator = Evaluator {
        scope,
        read,
        reads: Vec::new(),
        read_exprs: Vec::new(),
        whole: expr.to_string(),
        language: None,
        root,
    };
    match evaluator.eval(expr)? {
        Value::Place { addr, ty, size, .. } => {
            if let Some(t) = &ty {
                if t.size == 0 {
                    return Err(EvalError::NoSize {
                        expr: expr.to_string(),
                        ty: t.name.clone(),
                    });
                }
            }
            Ok(Evaluated {
                expr: expr.to_string(),
                addr,
                len: ty.as_ref().map_or(size, |t| t.size),
                ty,
                pointer_reads: evaluator.reads,
                pointer_exprs: evaluator.read_exprs,
                language: evaluator.language.unwrap_or_default(),
            })
        }
        Value::Pointer { .. } | Value::Int(_) => Err(EvalError::NotLvalue {
            expr: expr.to_string(),
        }),
    }
}

impl Evaluator<'_, '_> {
    fn module(&self, index: Option<usize>) -> Option<&LoadedModule> {
        index.and_then(|i| self.scope.modules.get(i))
    }

    fn resolve_target(&self, target: &TypeRef, module: Option<usize>) -> Option<Type> {
        if let Some(ty) = target.built() {
            return Some(ty.clone());
        }
        if let Some(m) = self.module(module) {
            if let Some(t) = m.debug.resolve_ref(target) {
                return Some(t);
            }
        }
        self.scope
            .modules
            .iter()
            .find_map(|m| m.debug.resolve_ref(target))
    }

    fn read_pointer(&mut self, addr: u64, expr: &Expr) -> Result<u64, EvalError> {
        let mut buf = [0u8; 8];
        if !(self.read)(addr, &mut buf) {
            return Err(EvalError::Unreadable {
                expr: expr.to_string(),
                addr,
            });
        }
        let value = u64::from_le_bytes(buf);
        self.reads.push(PointerRead {
            addr,
            len: 8,
            value,
        });
        self.read_exprs.push(expr.to_string());
        Ok(value)
    }

    fn eval(&mut self, expr: &Expr) -> Result<Value, EvalError> {
        match expr {
            Expr::Int(n) => Ok(Value::Int(*n)),
            Expr::Name(path) => self.lookup(path),
            Expr::Member(base, member) => {
                let value = self.eval(base)?;
                self.member(base, value, member, false)
            }
            Expr::Arrow(base, member) => {
                let value = self.eval(base)?;
                let pointee = self.deref(base, value, "->")?;
                self.member(base, pointee, member, true)
            }
            Expr::Deref(base) => {
                let value = self.eval(base)?;
                self.deref(base, value, "*")
            }
            Expr::Index(base, index) => {
                let value = self.eval(base)?;
                self.index(base, value, *index)
            }
            Expr::AddrOf(base) => match self.eval(base)? {
                Value::Place {
                    addr,
                    ty,
                    size,
                    module,
                } => {
                    let ty = ty.unwrap_or_else(|| untyped(size));
                    Ok(Value::Pointer {
                        value: addr,
                        target: TypeRef::to_type(ty),
                        module,
                    })
                }
                _ => Err(EvalError::NotLvalue {
                    expr: base.to_string(),
                }),
            },
            Expr::Cast(cast, base) => self.cast(cast, base),
        }
    }

    fn cast(&mut self, cast: &CastType, base: &Expr) -> Result<Value, EvalError> {
        if cast.pointers == 0 {
            return Err(EvalError::CastNotPointer {
                ty: cast.base.clone(),
                expr: base.to_string(),
            });
        }
        let mut target = if cast.base == "void" {
            None
        } else {
            let found = self
                .scope
                .modules
                .iter()
                .find_map(|m| m.debug.find_type(&cast.base))
                .or_else(|| crate::types::c_base_type(&cast.base));
            Some(found.ok_or_else(|| EvalError::UnknownType {
                name: cast.base.clone(),
            })?)
        };
        let mut target_ref = match target.take() {
            Some(t) => TypeRef::to_type(t),
            None => TypeRef {
                name: "void".into(),
                target: crate::types::RefTarget::Void,
            },
        };
        for _ in 1..cast.pointers {
            target_ref = TypeRef::to_type(Type::pointer_to(target_ref));
        }
        let (value, module) = match self.eval(base)? {
            Value::Int(n) => (n, None),
            Value::Pointer { value, module, .. } => (value, module),
            Value::Place { addr, module, .. } => (self.read_pointer(addr, base)?, module),
        };
        Ok(Value::Pointer {
            value,
            target: target_ref,
            module,
        })
    }

    fn deref(&mut self, base: &Expr, value: Value, op: &str) -> Result<Value, EvalError> {
        let hint = |ty: &Type| -> String {
            match (&ty.kind, op) {
                (TypeKind::Struct(_) | TypeKind::Union(_), "->") => {
                    format!("; use '.' for a struct: {base}.member")
                }
                _ => format!("; cast it if it holds an address: *(T *){base}"),
            }
        };
        match value {
            Value::Int(n) => Err(EvalError::NotPointer {
                expr: base.to_string(),
                ty: "an integer".into(),
                hint: format!("; cast it to a pointer: *(unsigned long *){n:#x}"),
            }),
            Value::Pointer {
                value,
                target,
                module,
            } => self.pointee(base, value, &target, module),
            Value::Place {
                addr, ty, module, ..
            } => {
                let Some(ty) = ty else {
                    return Err(EvalError::NoType {
                        expr: base.to_string(),
                    });
                };
                match &ty.kind {
                    TypeKind::Pointer { target } => {
                        let pointer = self.read_pointer(addr, base)?;
                        self.pointee(base, pointer, target, module)
                    }
                    TypeKind::Array { element, .. } => Ok(Value::Place {
                        addr,
                        size: element.size,
                        ty: Some((**element).clone()),
                        module,
                    }),
                    _ => Err(EvalError::NotPointer {
                        expr: base.to_string(),
                        hint: hint(&ty),
                        ty: ty.name.clone(),
                    }),
                }
            }
        }
    }

    fn pointee(
        &mut self,
        base: &Expr,
        pointer: u64,
        target: &TypeRef,
        module: Option<usize>,
    ) -> Result<Value, EvalError> {
        if target.is_void() {
            return Err(EvalError::VoidPointer {
                expr: base.to_string(),
            });
        }
        if pointer == 0 {
            return Err(EvalError::NullPointer {
                expr: base.to_string(),
                whole: self.whole.clone(),
            });
        }
        let ty = self.resolve_target(target, module);
        Ok(Value::Place {
            addr: pointer,
            size: ty.as_ref().map_or(0, |t| t.size),
            ty,
            module,
        })
    }

    fn member(
        &mut self,
        base: &Expr,
        value: Value,
        member: &str,
        arrow: bool,
    ) -> Result<Value, EvalError> {
        let shown = if arrow {
            format!("*{base}")
        } else {
            base.to_string()
        };
        let Value::Place {
            addr, ty, module, ..
        } = value
        else {
            return Err(EvalError::NotLvalue { expr: shown });
        };
        let Some(ty) = ty else {
            return Err(EvalError::NoType {
                expr: base.to_string(),
            });
        };
        if ty.fields().is_none() {
            let hint = if !arrow && matches!(ty.kind, TypeKind::Pointer { .. }) {
                format!("; it is a pointer: use {base}->{member}")
            } else {
                String::new()
            };
            return Err(EvalError::NotStruct {
                expr: shown,
                member: member.to_string(),
                ty: ty.name.clone(),
                hint,
            });
        }
        match ty.field(member) {
            Some((offset, field_ty)) => Ok(Value::Place {
                addr: addr.wrapping_add(offset),
                size: field_ty.size,
                ty: Some(field_ty.clone()),
                module,
            }),
            None => Err(EvalError::UnknownMember {
                expr: shown,
                member: member.to_string(),
                ty: ty.name.clone(),
                members: ty.field_names(),
            }),
        }
    }

    fn index(&mut self, base: &Expr, value: Value, index: u64) -> Result<Value, EvalError> {
        let (pointer, target, module) = match value {
            Value::Int(_) => {
                return Err(EvalError::NotIndexable {
                    expr: base.to_string(),
                    ty: "an integer".into(),
                })
            }
            Value::Pointer {
                value,
                target,
                module,
            } => (value, target, module),
            Value::Place {
                addr, ty, module, ..
            } => {
                let Some(ty) = ty else {
                    return Err(EvalError::NoType {
                        expr: base.to_string(),
                    });
                };
                match &ty.kind {
                    TypeKind::Array { element, count } => {
                        if *count > 0 && index >= *count {
                            return Err(EvalError::OutOfRange {
                                expr: base.to_string(),
                                ty: ty.name.clone(),
                                index,
                                count: *count,
                            });
                        }
                        return Ok(Value::Place {
                            addr: addr.wrapping_add(index.wrapping_mul(element.size)),
                            size: element.size,
                            ty: Some((**element).clone()),
                            module,
                        });
                    }
                    TypeKind::Pointer { target } => {
                        let target = target.clone();
                        (self.read_pointer(addr, base)?, target, module)
                    }
                    _ => {
                        return Err(EvalError::NotIndexable {
                            expr: base.to_string(),
                            ty: ty.name.clone(),
                        })
                    }
                }
            }
        };
        match self.pointee(base, pointer, &target, module)? {
            Value::Place {
                addr,
                ty,
                size,
                module,
            } => Ok(Value::Place {
                addr: addr.wrapping_add(index.wrapping_mul(size)),
                ty,
                size,
                module,
            }),
            other => Ok(other),
        }
    }

    fn lookup(&mut self, path: &NamePath) -> Result<Value, EvalError> {
        if let Some((_, addr, ty)) = self.root.filter(|(root, ..)| *root == path) {
            return Ok(Value::Place {
                addr,
                size: ty.size,
                ty: Some(ty.clone()),
                module: Some(0),
            });
        }
        let display = Expr::Name(path.clone()).to_string();
        let mut declared: Option<(usize, Type)> = None;
        let mut no_address: Option<(String, VarLocation)> = None;
        for (index, module) in self.scope.modules.iter().enumerate() {
            let found = module
                .debug
                .find_variables(path.quoted.as_deref(), &path.segments);
            let with_address: Vec<&Variable> = found
                .iter()
                .copied()
                .filter(|v| matches!(v.location, VarLocation::Address(_)))
                .collect();
            let chosen = match with_address.as_slice() {
                [] => None,
                [one] => Some(*one),
                many => match many.iter().find(|v| v.external) {
                    Some(external) => Some(*external),
                    None => {
                        let mut files: Vec<String> = many
                            .iter()
                            .map(|v| v.file.rsplit('/').next().unwrap_or(&v.file).to_string())
                            .collect();
                        files.dedup();
                        if files.len() > 1 && path.quoted.is_none() {
                            return Err(EvalError::Ambiguous {
                                name: display,
                                files,
                            });
                        }
                        Some(many[0])
                    }
                },
            };
            if let Some(var) = chosen {
                let VarLocation::Address(a) = var.location else {
                    unreachable!("filtered on Address")
                };
                let ty = module.debug.variable_type(var);
                self.language.get_or_insert(var.language);
                return Ok(Value::Place {
                    addr: a.wrapping_add(module.bias),
                    size: ty.as_ref().map_or(0, |t| t.size),
                    ty,
                    module: Some(index),
                });
            }
            for var in found {
                match var.location {
                    VarLocation::Declaration => {
                        if declared.is_none() {
                            if let Some(ty) = module.debug.variable_type(var) {
                                declared = Some((index, ty));
                            }
                        }
                    }
                    other => {
                        no_address.get_or_insert((var.qualified(), other));
                    }
                }
            }
        }
        // No DWARF definition: the ELF symbol tables (with a declaration's type if any).
        if path.quoted.is_none() {
            if let Some(symbols) = self.scope.symbols {
                if let Ok(sym) = symbols.resolve(&path.joined()) {
                    let module = declared.as_ref().map(|(i, _)| *i);
                    let ty = declared.map(|(_, t)| t);
                    return Ok(Value::Place {
                        addr: sym.addr,
                        size: ty.as_ref().map_or(sym.size, |t| t.size),
                        ty,
                        module,
                    });
                }
            }
        }
        if let Some((name, location)) = no_address {
            let why = match location {
                VarLocation::Register => "lives in a register",
                VarLocation::Stack => "is a local variable on the stack",
                VarLocation::LocationList => {
                    "is a local variable that moves between registers and the stack"
                }
                VarLocation::ThreadLocal => "is thread-local (one copy per thread)",
                VarLocation::Constant => "was optimized into a constant",
                VarLocation::OptimizedOut => "was optimized out",
                _ => "has a computed location",
            };
            return Err(EvalError::NoFixedAddress {
                name,
                why: why.to_string(),
            });
        }
        let wanted = path.joined();
        let last = path.segments.last().cloned().unwrap_or_default();
        if let Some((member, class)) = path.segments.split_last().filter(|(_, c)| !c.is_empty()) {
            let class = class.join("::");
            let ty = self
                .scope
                .modules
                .iter()
                .find_map(|m| m.debug.find_type(&class));
            if let Some(ty) = ty.filter(|t| t.field(member).is_some()) {
                return Err(EvalError::NotStatic {
                    class,
                    member: member.clone(),
                    ty: ty.name,
                });
            }
        }
        let mut names: Vec<String> = self
            .scope
            .modules
            .iter()
            .flat_map(|m| m.debug.variables().iter())
            .filter(|v| matches!(v.location, VarLocation::Address(_)))
            .map(Variable::qualified)
            .collect();
        names.sort();
        names.dedup();
        let mut near = crate::near_matches(&wanted, names.iter().map(String::as_str), 3);
        if near.is_empty() && wanted != last {
            near = crate::near_matches(&last, names.iter().map(String::as_str), 3);
        }
        Err(EvalError::UnknownVariable {
            name: display,
            near,
        })
    }
}

/// A typeless value of `size` bytes, shown as an unsigned integer.
fn untyped(size: u64) -> Type {
    Type {
        name: format!("<{size}-byte symbol>"),
        size,
        kind: TypeKind::Base(crate::types::Encoding::Unsigned),
    }
}

impl fmt::Display for PointerRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}/{} = {:#x}", self.addr, self.len, self.value)
    }
}
