//! The types of what is watched: the DWARF of the target's modules, loaded when first needed
//! (the executable's, then the libraries' only for a name it does not have), a symbol's DWARF
//! type ([`crate::typed::WatchType`]; unknown without debug info), the type and member layout
//! of an evaluated expression, and the `::` paths only the DWARF names.

use std::sync::Arc;

use hwbp_core::spec::{WatchLocation, WatchSpec};
use hwbp_symbols::eval::{self, EvalError, LoadedModule, Scope};
use hwbp_symbols::expr::{self, Expr};
use hwbp_symbols::{ModuleInfo, ProcessSymbols};

use crate::typed::WatchType;

/// The DWARF of the target's modules, loaded when first needed: the executable's first,
/// libraries only for a name the executable does not have (libc's DWARF takes seconds).
pub(super) struct Modules {
    pub(super) symbols: Arc<ProcessSymbols>,
    infos: Vec<ModuleInfo>,
    loaded: Vec<Option<Option<LoadedModule>>>,
}

impl Modules {
    pub(super) fn new(symbols: Arc<ProcessSymbols>) -> Modules {
        let infos = symbols.modules();
        let loaded = vec![None; infos.len()];
        Modules {
            symbols,
            infos,
            loaded,
        }
    }

    fn get(&mut self, index: usize) -> Option<LoadedModule> {
        let info = &self.infos[index];
        self.loaded[index]
            .get_or_insert_with(|| LoadedModule::load(info).ok())
            .clone()
    }

    /// The executable's DWARF (empty without), or every module's.
    pub(super) fn scope(&mut self, all: bool) -> Vec<LoadedModule> {
        let n = if all {
            self.infos.len()
        } else {
            1.min(self.infos.len())
        };
        (0..n).filter_map(|i| self.get(i)).collect()
    }

    /// The type of symbol `sym` from its module's DWARF; unknown without.
    pub(super) fn symbol_type(&mut self, sym: &hwbp_symbols::ResolvedSymbol) -> WatchType {
        let unknown = WatchType {
            ty: None,
            language: Default::default(),
            root: sym.name.clone(),
        };
        let Some(index) = self.infos.iter().position(|m| m.path == sym.module) else {
            return unknown;
        };
        let (Some(module), Ok(parsed)) = (self.get(index), expr::parse(&sym.name)) else {
            return unknown;
        };
        let scope = Scope {
            modules: std::slice::from_ref(&module),
            symbols: None,
        };
        match eval::evaluate(&parsed, &scope, &mut |_, _| false) {
            Ok(found) if found.addr == sym.addr && found.ty.is_some() => WatchType {
                ty: found.ty,
                language: found.language,
                root: sym.name.clone(),
            },
            _ => unknown,
        }
    }
}

/// A `::` path that no symbol table names but the DWARF may (`func::static_local`,
/// `ns::var`, `Class::static_member`): the expression to evaluate for it.
pub(super) fn dwarf_only_name(spec: &WatchSpec, symbols: Option<&ProcessSymbols>) -> Option<Expr> {
    let WatchLocation::Symbol { name, offset: 0 } = &spec.location else {
        return None;
    };
    if !name.contains("::") || symbols?.resolve(name).is_ok() {
        return None;
    }
    expr::parse(name).ok()
}

/// Whether an evaluation error may go away with the libraries' DWARF loaded too.
pub(super) fn may_be_in_a_library(e: &EvalError) -> bool {
    matches!(
        e,
        EvalError::UnknownVariable { .. }
            | EvalError::UnknownType { .. }
            | EvalError::NoType { .. }
    )
}

/// The type of an evaluated expression's value, its members named from the expression.
pub(crate) fn expression_type(evaluated: &eval::Evaluated) -> Arc<WatchType> {
    Arc::new(WatchType {
        ty: evaluated.ty.clone(),
        language: evaluated.language,
        root: evaluated.expr.clone(),
    })
}

/// The layout of an evaluated expression's value (`None` without a type), its member paths
/// starting from the expression ([`eval::Evaluated::member_root`]).
pub(crate) fn expression_layout(evaluated: &eval::Evaluated) -> Option<Arc<WatchType>> {
    evaluated.ty.as_ref()?;
    Some(Arc::new(WatchType {
        ty: evaluated.ty.clone(),
        language: evaluated.language,
        root: evaluated.member_root(),
    }))
}
