//! The facade's layers (lib.rs's module docs): every module of `src/` reaches only modules
//! of its own layer or a lower one, and the modules import each other without a circle.
//!
//! The graph is read from the sources: each `crate::MODULE` path outside comments (in `use`
//! lines, `use crate::{a, b}` groups and paths in code) is an edge from the file's top-level
//! module (`src/perf/drain.rs` is `perf`) to `MODULE`. A module's children reach their parent
//! through `super::`, which is the module itself, not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top.
const LAYERS: &[&str] = &["data", "plan", "capture", "engine", "watcher"];

/// Each module's layer.
const MODULE_LAYERS: &[(&str, &str)] = &[
    // Plain data: ids, hits, values and types, totals, the pure condition, options and
    // handles, the clock.
    ("error", "data"),
    ("json", "data"),
    ("hit", "data"),
    ("typed", "data"),
    ("scope", "data"),
    ("summary", "data"),
    ("condition", "data"),
    ("queue", "data"),
    ("options", "data"),
    ("clock", "data"),
    ("threads", "data"),
    // The plan, and what reads a plan without running it (the sink interface: a hit comes
    // with its planned watch).
    ("plan", "plan"),
    ("sink", "plan"),
    ("watch_condition", "plan"),
    ("hit_json", "plan"),
    ("ksym", "plan"),
    ("slots", "plan"),
    ("record", "plan"),
    // What every engine shares to turn a trap into a hit and hits into totals.
    ("capture", "capture"),
    ("values", "capture"),
    ("shadow", "capture"),
    ("rotation", "capture"),
    ("callchain", "capture"),
    ("launched", "capture"),
    // The engines, and the choice between them.
    ("perf", "engine"),
    ("stop", "engine"),
    ("local", "engine"),
    ("dispatch", "engine"),
    ("tree", "engine"),
    // The public runner.
    ("watcher", "watcher"),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate root).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src_dir()).expect("a file under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(name) => Some(name.to_string()),
        None => Some(first),
    }
}

/// The source without comments (line comments and doc comments; no block comments are used).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first segments of every `crate::...` path in `code`, with `use crate::{a, b::c}`
/// groups expanded.
fn crate_references(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(is_ident) {
            continue; // `hwbp_crate::` or similar: not this crate's path.
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').expect("a closed use group");
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            found.push(name);
        }
    }
    found
}

/// Module -> the modules it references.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&file) else {
            continue; // lib.rs declares the modules and re-exports their items.
        };
        let code = code_of(&std::fs::read_to_string(&file).expect("a readable source"));
        let edges = graph.entry(module.clone()).or_default();
        for name in crate_references(&code) {
            assert!(
                name.starts_with(|c: char| c.is_ascii_lowercase()),
                "{}: `crate::{name}` goes through lib.rs's re-exports: name the module that \
                 owns {name}",
                file.display()
            );
            if name != module {
                edges.insert(name);
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> usize {
    let (_, layer) = MODULE_LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .unwrap_or_else(|| panic!("module `{module}` has no layer in MODULE_LAYERS: add it"));
    LAYERS
        .iter()
        .position(|l| l == layer)
        .unwrap_or_else(|| panic!("layer `{layer}` of `{module}` is not one of {LAYERS:?}"))
}

#[test]
fn every_module_has_a_layer_and_every_layer_entry_is_a_module() {
    let graph = module_graph();
    for module in graph.keys() {
        layer_of(module);
    }
    for (module, _) in MODULE_LAYERS {
        assert!(
            graph.contains_key(*module),
            "MODULE_LAYERS names `{module}`, which src/ does not have"
        );
    }
}

#[test]
fn modules_reach_only_their_own_layer_or_lower_ones() {
    let graph = module_graph();
    let mut upward = Vec::new();
    for (module, edges) in &graph {
        for to in edges {
            assert!(
                graph.contains_key(to),
                "`{module}` references `crate::{to}`, which is not a module of src/"
            );
            if layer_of(to) > layer_of(module) {
                upward.push(format!(
                    "{module} ({}) -> {to} ({})",
                    LAYERS[layer_of(module)],
                    LAYERS[layer_of(to)]
                ));
            }
        }
    }
    assert!(upward.is_empty(), "imports reaching up: {upward:#?}");
}

/// The circles of `graph`, each as `a -> b -> a` (depth first: a module met again while
/// on the path closes one).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        circles: &mut Vec<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|m| *m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module);
            circles.push(circle.join(" -> "));
            return;
        }
        path.push(module);
        for to in graph.get(module).into_iter().flatten() {
            visit(to, graph, path, done, circles);
        }
        path.pop();
        done.insert(module);
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn the_module_graph_has_no_circle() {
    let found = circles(&module_graph());
    assert!(found.is_empty(), "import circles: {found:#?}");
}

#[test]
fn the_circle_finder_finds_a_circle_through_three_modules() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("plan", &["hit"][..]),
        ("hit", &["typed"]),
        ("typed", &["plan", "error"]),
        ("error", &[]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_string(), to.iter().map(|t| t.to_string()).collect()))
    .collect();
    assert_eq!(circles(&graph), ["hit -> typed -> plan -> hit"]);
}

#[test]
fn the_reader_finds_the_references_it_must() {
    let code = code_of(
        "use crate::error::{Error, Result};\n\
         use crate::{hit, plan::PlannedWatch};\n\
         // crate::comment is not a reference\n\
         let x = crate::perf::run(); /// crate::doc neither\n\
         use hwbp_crate::ignored;",
    );
    assert_eq!(
        crate_references(&code),
        ["error", "hit", "plan", "perf"],
        "each path's module, in order"
    );
}
