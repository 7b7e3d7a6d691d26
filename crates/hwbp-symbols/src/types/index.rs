//! The variable index: every named variable of a module ([`Variable`]: name, scopes,
//! function, file, [`VarLocation`] from `DW_AT_location`), with specifications and abstract
//! origins resolved across units, named types for casts, and the lookups by name
//! ([`ModuleDebug::find_variables`], [`ModuleDebug::global_type`], [`ModuleDebug::find_type`])
//! and by address ([`ModuleDebug::variable_at`]).

use std::collections::HashMap;

use gimli::{AttributeValue, DebuggingInformationEntry, Reader, Unit, UnitOffset};

use super::builder::type_ref;
use super::{c_base_type, DwarfError, Language, ModuleDebug, Type, R};

/// Where a variable lives, from its `DW_AT_location` (DWARF 5 §2.5, §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarLocation {
    /// A fixed link-time address (`DW_OP_addr`/`DW_OP_addrx`); add the module's load bias.
    Address(u64),
    /// In a register (`DW_OP_reg*`).
    Register,
    /// On the stack, relative to the frame (`DW_OP_fbreg`, `DW_OP_breg*`).
    Stack,
    /// A location list: where it is depends on the pc.
    LocationList,
    /// Thread-local storage (`DW_OP_form_tls_address`).
    ThreadLocal,
    /// No storage, a `DW_AT_const_value`.
    Constant,
    /// No `DW_AT_location`: optimized out.
    OptimizedOut,
    /// A declaration (`extern`, or a C++ static member in its class): defined elsewhere.
    Declaration,
    /// A location expression this reader does not evaluate.
    Complex,
}

/// One named variable of a module's DWARF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Its own name (`depth`, `count`).
    pub name: String,
    /// Enclosing namespaces and classes, outermost first (`["net", "inner"]`).
    pub scope: Vec<String>,
    /// The enclosing function's qualified name, for locals and static locals.
    pub function: Option<String>,
    /// The compile unit's `DW_AT_name` (the source file).
    pub file: String,
    /// `DW_AT_external`: visible outside its file.
    pub external: bool,
    /// Where it lives.
    pub location: VarLocation,
    /// Its compile unit's language.
    pub language: Language,
    unit: usize,
    ty: Option<UnitOffset>,
}

impl Variable {
    /// The name as the user writes it: `func::x`, `ns::x`, `x`.
    pub fn qualified(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(function) = &self.function {
            parts.push(function);
        }
        parts.extend(self.scope.iter().map(String::as_str));
        parts.push(&self.name);
        parts.join("::")
    }

    fn path_matches(&self, segments: &[String]) -> bool {
        segments.len() == self.scope.len() + 1
            && segments.last() == Some(&self.name)
            && self.scope.iter().zip(segments).all(|(a, b)| a == b)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum TypeTag {
    Struct,
    Union,
    Enum,
    /// Typedefs, base types and C++ class names usable without a keyword.
    Plain,
}

/// What the index remembers of a DIE another DIE refers to (specification, abstract origin).
#[derive(Clone)]
pub(super) struct Declared {
    name: String,
    scope: Vec<String>,
    function: Option<String>,
    ty: Option<UnitOffset>,
    /// The unit `ty` is relative to.
    unit: usize,
}

/// Cross-references collected while indexing, resolved once every unit is indexed (gcc's LTO
/// output refers from LTRANS units to the early-debug units with `DW_FORM_ref_addr`).
#[derive(Default)]
pub(super) struct Links {
    /// `.debug_info` offset of a DIE -> what it declares.
    declared: HashMap<usize, Declared>,
    /// (variable index, `.debug_info` offset of its specification/abstract origin).
    linked: Vec<(usize, usize)>,
}

impl ModuleDebug {
    /// Every named variable (globals, statics, static locals, locals, namespace members).
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The type of a variable (`None`: no `DW_AT_type`).
    pub fn variable_type(&self, var: &Variable) -> Option<Type> {
        let offset = var.ty?;
        Some(self.build(var.unit, offset, 0))
    }

    /// The type of the global variable `name`: file-scope or namespace-level (`cfg`,
    /// `ns::inner::var`, a Rust static's path), matched by its own name or its qualified one;
    /// a definition's over an `extern` declaration's (a definition elsewhere, e.g. built
    /// without -g). [`DwarfError::NoSuchVariable`] with the closest global names otherwise.
    pub fn global_type(&self, name: &str) -> Result<Type, DwarfError> {
        let segments: Vec<String> = name.split("::").map(String::from).collect();
        let globals = || self.variables.iter().filter(|v| v.function.is_none());
        let found = globals()
            .filter(|v| v.ty.is_some() && (v.name == name || v.path_matches(&segments)))
            .min_by_key(|v| v.location == VarLocation::Declaration);
        if let Some(ty) = found.and_then(|var| self.variable_type(var)) {
            return Ok(ty);
        }
        let mut names: Vec<String> = globals().map(Variable::qualified).collect();
        names.sort();
        names.dedup();
        Err(DwarfError::NoSuchVariable {
            name: name.to_string(),
            path: self.path.clone(),
            near: crate::near_matches(name, names.iter().map(String::as_str), 3),
        })
    }

    /// Variables matching a name: `segments` is `ns::...::name` or `func::name`; `quoted` is
    /// gdb's `'file.c'` or `'func'` scope.
    pub fn find_variables(&self, quoted: Option<&str>, segments: &[String]) -> Vec<&Variable> {
        let joined = segments.join("::");
        self.variables
            .iter()
            .filter(|v| match quoted {
                Some(q) if file_matches(&v.file, q) => {
                    v.function.is_none() && v.path_matches(segments)
                }
                Some(q) => {
                    v.function.as_deref() == Some(q) && v.scope.is_empty() && v.name == joined
                }
                None => {
                    (v.function.is_none() && v.path_matches(segments))
                        || (segments.len() >= 2
                            && v.scope.is_empty()
                            && segments.last() == Some(&v.name)
                            && v.function.as_deref()
                                == Some(&segments[..segments.len() - 1].join("::")))
                }
            })
            .collect()
    }

    /// A type by the name a cast uses: `struct conn`, `union u`, `enum mode`, `uint32_t`,
    /// `ns::Point`, `unsigned long` (C base types are matched in any word order; one missing
    /// from the DWARF is synthesized with its x86-64 size).
    pub fn find_type(&self, name: &str) -> Option<Type> {
        let name = name.trim();
        let (tag, bare) = if let Some(rest) = name.strip_prefix("struct ") {
            (TypeTag::Struct, rest)
        } else if let Some(rest) = name.strip_prefix("class ") {
            (TypeTag::Struct, rest)
        } else if let Some(rest) = name.strip_prefix("union ") {
            (TypeTag::Union, rest)
        } else if let Some(rest) = name.strip_prefix("enum ") {
            (TypeTag::Enum, rest)
        } else {
            (TypeTag::Plain, name)
        };
        let key = match (tag, c_base_type(bare)) {
            (TypeTag::Plain, Some(builtin)) => builtin.name.clone(),
            _ => bare.trim().to_string(),
        };
        if let Some(&(unit, offset)) = self.named_types.get(&(tag, key)) {
            return Some(self.build(unit, offset, 0));
        }
        if tag == TypeTag::Plain {
            for alt in [TypeTag::Struct, TypeTag::Union, TypeTag::Enum] {
                if let Some(&(unit, offset)) = self.named_types.get(&(alt, bare.to_string())) {
                    return Some(self.build(unit, offset, 0));
                }
            }
            return c_base_type(bare);
        }
        None
    }

    /// The variable whose storage covers link-time address `vaddr`: `nodes+16`, `counter`.
    pub fn variable_at(&self, vaddr: u64) -> Option<String> {
        let addr_of = |i: usize| match self.variables[i].location {
            VarLocation::Address(a) => a,
            _ => 0,
        };
        let end = self.by_address.partition_point(|&i| addr_of(i) <= vaddr);
        for &i in self.by_address[..end].iter().rev().take(4) {
            let var = &self.variables[i];
            let start = addr_of(i);
            let size = self.variable_type(var).map_or(0, |t| t.size);
            if vaddr < start + size.max(1) {
                let mut name = var.scope.clone();
                name.push(var.name.clone());
                let name = name.join("::");
                return Some(if vaddr == start {
                    name
                } else {
                    format!("{name}+{}", vaddr - start)
                });
            }
        }
        None
    }

    /// Gives variables defined through `DW_AT_specification`/`DW_AT_abstract_origin` the
    /// name, scope and type of the DIE they refer to.
    pub(super) fn resolve_links(&mut self, links: &Links) {
        for &(index, target) in &links.linked {
            let Some(decl) = links.declared.get(&target) else {
                continue;
            };
            let var = &mut self.variables[index];
            if var.name.is_empty() {
                var.name = decl.name.clone();
            }
            var.scope = decl.scope.clone();
            if decl.function.is_some() || var.function.is_none() {
                var.function = decl.function.clone();
            }
            if var.ty.is_none() {
                var.ty = decl.ty;
                var.unit = decl.unit;
            }
        }
        self.variables.retain(|v| !v.name.is_empty());
    }

    pub(super) fn index_unit(
        &mut self,
        unit_index: usize,
        unit: &Unit<R>,
        links: &mut Links,
    ) -> gimli::Result<()> {
        #[derive(Clone)]
        enum Scope {
            Unit,
            Named(String),
            Function(String),
            Other,
        }
        let file = match unit.name.as_ref() {
            Some(name) => name.to_string_lossy()?.into_owned(),
            None => String::new(),
        };
        let language = Language::of_unit(unit);
        self.languages.push(language);
        let global = |o: UnitOffset| o.to_debug_info_offset(&unit.header).map_or(0, |g| g.0);
        let mut scopes: Vec<(isize, Scope)> = Vec::new();
        let mut cursor = unit.entries();
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            while scopes.last().is_some_and(|(d, _)| *d >= depth) {
                scopes.pop();
            }
            let tag = entry.tag();
            let interesting = match tag {
                gimli::DW_TAG_member => {
                    entry.attr(gimli::DW_AT_external).is_some()
                        || entry.attr(gimli::DW_AT_declaration).is_some()
                }
                gimli::DW_TAG_compile_unit
                | gimli::DW_TAG_partial_unit
                | gimli::DW_TAG_namespace
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_typedef
                | gimli::DW_TAG_base_type
                | gimli::DW_TAG_subprogram
                | gimli::DW_TAG_variable => true,
                _ => false,
            };
            if !interesting {
                // Parameters, blocks, members...: only their children's scope matters.
                if entry.has_children() {
                    scopes.push((depth, Scope::Other));
                }
                continue;
            }
            let named_scope: Vec<String> = scopes
                .iter()
                .filter_map(|(_, s)| match s {
                    Scope::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            let function = scopes.iter().rev().find_map(|(_, s)| match s {
                Scope::Function(f) => Some(f.clone()),
                _ => None,
            });
            let in_type_or_ns_only = scopes
                .iter()
                .all(|(_, s)| matches!(s, Scope::Unit | Scope::Named(_)));
            let name = self.name_of(unit, entry)?;
            let offset = entry.offset();
            let mut push = |scope: Scope| {
                if entry.has_children() {
                    scopes.push((depth, scope));
                }
            };
            match tag {
                gimli::DW_TAG_compile_unit | gimli::DW_TAG_partial_unit => push(Scope::Unit),
                gimli::DW_TAG_namespace => {
                    push(Scope::Named(
                        name.unwrap_or_else(|| "(anonymous namespace)".to_string()),
                    ));
                }
                gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_typedef
                | gimli::DW_TAG_base_type => {
                    if let (Some(n), true) = (&name, in_type_or_ns_only) {
                        let mut qualified = named_scope.clone();
                        qualified.push(n.clone());
                        let qualified = qualified.join("::");
                        let kind = match tag {
                            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type => {
                                TypeTag::Struct
                            }
                            gimli::DW_TAG_union_type => TypeTag::Union,
                            gimli::DW_TAG_enumeration_type => TypeTag::Enum,
                            _ => TypeTag::Plain,
                        };
                        if entry.attr(gimli::DW_AT_declaration).is_none() {
                            self.named_types
                                .entry((kind, qualified.clone()))
                                .or_insert((unit_index, offset));
                            if kind != TypeTag::Plain && language == Language::Rust {
                                self.rust_names
                                    .insert((unit_index, offset), qualified.clone());
                            }
                            if kind == TypeTag::Struct && language != Language::C {
                                self.named_types
                                    .entry((TypeTag::Plain, qualified))
                                    .or_insert((unit_index, offset));
                            }
                        }
                    }
                    match (&name, tag) {
                        (
                            Some(n),
                            gimli::DW_TAG_structure_type
                            | gimli::DW_TAG_class_type
                            | gimli::DW_TAG_union_type,
                        ) => push(Scope::Named(n.clone())),
                        _ => push(Scope::Other),
                    }
                }
                gimli::DW_TAG_subprogram => {
                    let own = match (&name, link_of(unit, entry)) {
                        (Some(n), _) => {
                            let mut q = named_scope.clone();
                            q.push(n.clone());
                            q.join("::")
                        }
                        (None, Some(target)) => links
                            .declared
                            .get(&target)
                            .map(|d| {
                                let mut q = d.scope.clone();
                                q.push(d.name.clone());
                                q.join("::")
                            })
                            .or_else(|| {
                                let local =
                                    gimli::DebugInfoOffset(target).to_unit_offset(&unit.header)?;
                                self.qualified_via(unit, local)
                            })
                            .unwrap_or_default(),
                        (None, None) => String::new(),
                    };
                    let split: Vec<String> = own.split("::").map(String::from).collect();
                    if let Some((last, scope)) = split.split_last() {
                        links.declared.insert(
                            global(offset),
                            Declared {
                                name: last.clone(),
                                scope: scope.to_vec(),
                                function: None,
                                ty: None,
                                unit: unit_index,
                            },
                        );
                    }
                    push(Scope::Function(own));
                }
                gimli::DW_TAG_variable | gimli::DW_TAG_member
                    if tag == gimli::DW_TAG_variable
                        || entry.attr(gimli::DW_AT_external).is_some()
                        || entry.attr(gimli::DW_AT_declaration).is_some() =>
                {
                    let location = location_of(&self.dwarf, unit, entry)?;
                    let link = link_of(unit, entry);
                    if link.is_some() && name.is_none() && location == VarLocation::OptimizedOut {
                        // A concrete inlined instance without storage: the abstract one counts.
                        continue;
                    }
                    let var = Variable {
                        name: name.clone().unwrap_or_default(),
                        scope: named_scope.clone(),
                        function: function.clone(),
                        file: file.clone(),
                        external: entry.attr(gimli::DW_AT_external).is_some(),
                        location,
                        language,
                        unit: unit_index,
                        ty: type_ref(entry),
                    };
                    links.declared.insert(
                        global(offset),
                        Declared {
                            name: var.name.clone(),
                            scope: var.scope.clone(),
                            function: var.function.clone(),
                            ty: var.ty,
                            unit: unit_index,
                        },
                    );
                    if let Some(target) = link {
                        links.linked.push((self.variables.len(), target));
                    }
                    self.variables.push(var);
                }
                _ => push(Scope::Other),
            }
        }
        Ok(())
    }

    /// `ns::Class::method` for a declaration DIE reached by a forward reference.
    fn qualified_via(&self, unit: &Unit<R>, target: UnitOffset) -> Option<String> {
        let entry = unit.entry(target).ok()?;
        self.name_of(unit, &entry).ok().flatten()
    }
}

/// `'file.c'` matches a unit named `file.c`, `dir/file.c` or `/abs/dir/file.c`.
pub(crate) fn file_matches(unit_name: &str, quoted: &str) -> bool {
    unit_name == quoted || unit_name.ends_with(&format!("/{quoted}"))
}

/// The `.debug_info` offset of the DIE a `DW_AT_specification`/`DW_AT_abstract_origin`
/// names: in the same unit (`DW_FORM_ref*`) or anywhere in the section (`DW_FORM_ref_addr`).
fn link_of(unit: &Unit<R>, entry: &DebuggingInformationEntry<R>) -> Option<usize> {
    [gimli::DW_AT_specification, gimli::DW_AT_abstract_origin]
        .into_iter()
        .find_map(|at| match entry.attr_value(at) {
            Some(AttributeValue::UnitRef(o)) => o.to_debug_info_offset(&unit.header).map(|g| g.0),
            Some(AttributeValue::DebugInfoRef(o)) => Some(o.0),
            _ => None,
        })
}

/// Classifies `DW_AT_location` (DWARF 5 §2.5/§2.6): a lone `DW_OP_addr`/`DW_OP_addrx` is a
/// fixed address; register, frame-relative and TLS operations say why there is none.
fn location_of(
    dwarf: &gimli::Dwarf<R>,
    unit: &Unit<R>,
    entry: &DebuggingInformationEntry<R>,
) -> gimli::Result<VarLocation> {
    if entry.attr(gimli::DW_AT_declaration).is_some() && entry.attr(gimli::DW_AT_location).is_none()
    {
        return Ok(VarLocation::Declaration);
    }
    let expr = match entry.attr_value(gimli::DW_AT_location) {
        Some(AttributeValue::Exprloc(expr)) => expr,
        Some(AttributeValue::LocationListsRef(_) | AttributeValue::SecOffset(_)) => {
            return Ok(VarLocation::LocationList)
        }
        Some(_) => return Ok(VarLocation::Complex),
        None if entry.attr(gimli::DW_AT_const_value).is_some() => return Ok(VarLocation::Constant),
        None => return Ok(VarLocation::OptimizedOut),
    };
    let mut ops = expr.operations(unit.encoding());
    let mut address = None;
    let mut count = 0;
    while let Some(op) = ops.next()? {
        count += 1;
        match op {
            gimli::Operation::Address { address: a } => address = Some(a),
            gimli::Operation::AddressIndex { index } => address = Some(dwarf.address(unit, index)?),
            gimli::Operation::Register { .. } => return Ok(VarLocation::Register),
            gimli::Operation::FrameOffset { .. }
            | gimli::Operation::RegisterOffset { .. }
            | gimli::Operation::CallFrameCFA => return Ok(VarLocation::Stack),
            gimli::Operation::TLS => return Ok(VarLocation::ThreadLocal),
            gimli::Operation::StackValue | gimli::Operation::ImplicitValue { .. } => {
                return Ok(VarLocation::Constant)
            }
            _ => {}
        }
    }
    Ok(match (address, count) {
        (Some(a), 1) => VarLocation::Address(a),
        _ => VarLocation::Complex,
    })
}
