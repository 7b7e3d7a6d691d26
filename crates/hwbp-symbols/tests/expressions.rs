//! Watch expressions, DWARF types and typed values on real compiler output: the `typed` C
//! fixture (gcc -g, two files), `scoped` (g++), `rust_statics` (rustc -g), checked against
//! gdb (`print &(EXPR)`, `print sizeof(EXPR)`, `print EXPR` on the same binary, in the same
//! test) and `nm`, at rest (the `-no-pie` builds, whose file holds the initial values of every
//! pointer) and in a live process (the PIE build, through `/proc/PID/mem`).

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hwbp_core::compare::{CompareOp, IntCondition, Literal};
use hwbp_fixtures::{Fixture, AGGREGATES_NOPIE, RUST_STATICS, SCOPED, TYPED, TYPED_NOPIE};
use hwbp_symbols::debuglink::{DebugSearch, DebugSource};
use hwbp_symbols::eval::{evaluate, Evaluated, LoadedModule, PointerRead, Scope};
use hwbp_symbols::expr::parse;
use hwbp_symbols::types::{Language, ModuleDebug, Type};
use hwbp_symbols::value::{diff_values, format_value, format_value_in};
use hwbp_symbols::ProcessSymbols;
use object::{Object, ObjectSection};

/// Reads memory of a program at rest from its ELF file: initialized sections by address,
/// `.bss` as zeros.
fn file_memory(path: &str) -> impl FnMut(u64, &mut [u8]) -> bool {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sections: Vec<(u64, u64, Option<Vec<u8>>)> = file
        .sections()
        .filter(|s| s.address() != 0)
        .map(|s| {
            let bytes = (s.kind() != object::SectionKind::UninitializedData)
                .then(|| s.data().unwrap().to_vec());
            (s.address(), s.size(), bytes)
        })
        .collect();
    move |addr: u64, buf: &mut [u8]| {
        for (start, size, bytes) in &sections {
            if *start <= addr && addr + buf.len() as u64 <= start + size {
                match bytes {
                    Some(b) => {
                        let off = (addr - start) as usize;
                        buf.copy_from_slice(&b[off..off + buf.len()]);
                    }
                    None => buf.fill(0),
                }
                return true;
            }
        }
        false
    }
}

fn at_rest(path: &str) -> Vec<LoadedModule> {
    vec![LoadedModule {
        debug: Arc::new(ModuleDebug::load(Path::new(path)).unwrap()),
        bias: 0,
    }]
}

fn eval_at_rest(path: &str, text: &str) -> Evaluated {
    let modules = at_rest(path);
    let scope = Scope {
        modules: &modules,
        symbols: None,
    };
    let mut read = file_memory(path);
    evaluate(&parse(text).unwrap(), &scope, &mut read).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn eval_error(path: &str, text: &str) -> String {
    let modules = at_rest(path);
    let scope = Scope {
        modules: &modules,
        symbols: None,
    };
    let mut read = file_memory(path);
    match evaluate(&parse(text).unwrap(), &scope, &mut read) {
        Ok(v) => panic!("{text} evaluated to {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// The value of `ev` read from the file, formatted by its type, pointers symbolized from
/// the DWARF variables.
fn shown(path: &str, ev: &Evaluated) -> String {
    let mut read = file_memory(path);
    let mut bytes = vec![0u8; ev.len as usize];
    assert!(read(ev.addr, &mut bytes), "{} at {:#x}", ev.expr, ev.addr);
    let debug = ModuleDebug::load(Path::new(path)).unwrap();
    format_value(ev.ty.as_ref().unwrap(), &bytes, &mut |a| {
        debug.variable_at(a)
    })
}

/// `nm` addresses of the binary's symbols (for several of one name, the first).
fn nm(path: &str) -> HashMap<String, u64> {
    let out = Command::new("nm").arg(path).output().unwrap();
    let mut map = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [addr, _, name] = parts.as_slice() {
            map.entry(name.to_string())
                .or_insert(u64::from_str_radix(addr, 16).unwrap());
        }
    }
    map
}

/// gdb's answers for `print &(E)`, `print sizeof(E)`, `print E`, for each expression, on
/// the binary at rest: (address, size, value without a pointer's `(type *) ` prefix).
fn gdb(path: &str, language: &str, exprs: &[&str]) -> Vec<(u64, u64, String)> {
    let mut command = Command::new("gdb");
    command.args(["-nx", "-batch", "-ex", &format!("set language {language}")]);
    for e in exprs {
        command
            .arg("-ex")
            .arg(format!("print &({e})"))
            .arg("-ex")
            .arg(format!("print sizeof({e})"))
            .arg("-ex")
            .arg(format!("print {e}"));
    }
    let out = command.arg(path).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let values: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with('$'))
        .map(|l| l.split_once(" = ").unwrap().1.to_string())
        .collect();
    assert_eq!(
        values.len(),
        exprs.len() * 3,
        "gdb answered every print:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    values
        .chunks(3)
        .map(|c| {
            let addr = first_hex(&c[0]);
            let value = match c[2].split_once(") ") {
                Some((prefix, rest)) if prefix.starts_with('(') && prefix.contains('*') => {
                    rest.to_string()
                }
                _ => c[2].clone(),
            };
            (addr, c[1].parse().unwrap(), value)
        })
        .collect()
}

/// The first `0x...` number in a gdb answer (`(int *) 0x404080 <depth>`, `0x404186 <cfg+6>
/// "s..."` for a `char *`).
fn first_hex(answer: &str) -> u64 {
    let hex = answer
        .split_whitespace()
        .find(|w| w.starts_with("0x"))
        .unwrap_or_else(|| panic!("no address in {answer:?}"));
    u64::from_str_radix(&hex[2..], 16).unwrap()
}

/// Every expression form and every type kind, against gdb on the same binary: address,
/// size and printed value agree.
#[test]
fn c_expressions_agree_with_gdb_on_address_size_and_value() {
    let counter = nm(TYPED_NOPIE)["counter"];
    let cast_addr = format!("*(int *){counter:#x}");
    let exprs = [
        "cfg",
        "cfg.id",
        "cfg.level",
        "cfg.tag",
        "cfg.enabled",
        "cfg.range",
        "cfg.range.min",
        "cfg.limits",
        "cfg.limits[2]",
        "cfg.limits[2].max",
        "cfg.name",
        "cfg.ratio",
        "cfg.scale",
        "cfg.mode",
        "cfg.perm",
        "nodes",
        "nodes[1].next",
        "*head",
        "head->next->value",
        "(*head).next",
        "head->next->next->next",
        "*nodes",
        "cur->peer->state",
        "*int_ptr",
        "int_ptr[2]",
        "matrix",
        "matrix[1]",
        "matrix[1][2]",
        "counter",
        "sc",
        "uc",
        "letter",
        "flag",
        "f32",
        "f64",
        "global_mode",
        "global_perm",
        "odd_perm",
        "odd_mode",
        "ll",
        "ul",
        "sh",
        "u32",
        "zeros",
        "vp",
        "null_conn",
        "*(unsigned long *)&cfg",
        "*(struct conn *)&conns[1]",
        "*(uint32_t *)&cfg.range",
        "*(char *)&cfg.name",
        "*(long long *)&ll",
        &cast_addr,
        "bump::calls",
        "parse::depth",
        "'bump_b'::calls",
        "'typed.c'::file_static",
        "'typed_b.c'::file_static",
    ];
    agree_with_gdb(TYPED_NOPIE, &exprs);
}

/// Each expression's address, size and value, evaluated and printed by hwbp on `path` at
/// rest, are gdb's.
fn agree_with_gdb(path: &str, exprs: &[&str]) {
    let from_gdb = gdb(path, "c", exprs);
    for (text, (addr, size, value)) in exprs.iter().zip(from_gdb) {
        let ev = eval_at_rest(path, text);
        assert_eq!((ev.addr, ev.len), (addr, size), "{text}: address and size");
        assert_eq!(shown(path, &ev), value, "{text}: value as gdb prints it");
    }
}

/// Strings and arrays as gdb prints them, each rule once (a fixture built -O1 -g without frame
/// pointers): trailing NUL dropped, runs over 10 as `<repeats N times>` (a run of exactly 10
/// quoted), the 200-element `print elements` limit with `...`, C and octal escapes, `signed`
/// and `unsigned char` arrays, `int` arrays' runs and limit, and bit-fields by their bits.
#[test]
fn strings_and_arrays_print_as_gdb_prints_them() {
    let exprs = [
        "buf",
        "ten_a",
        "eleven_a",
        "xs",
        "letters",
        "escapes",
        "no_nul",
        "empty",
        "runs",
        "schars",
        "uchars",
        "ten_ints",
        "eleven_ints",
        "many_ints",
        "steps",
        "ramp",
        "bits",
        "pair",
    ];
    agree_with_gdb(AGGREGATES_NOPIE, &exprs);
    assert_eq!(
        shown(AGGREGATES_NOPIE, &eval_at_rest(AGGREGATES_NOPIE, "buf")),
        r#""value 2", '\000' <repeats 56 times>"#
    );
}

#[test]
fn addresses_match_nm_and_statics_resolve_by_function_and_file() {
    let syms = nm(TYPED_NOPIE);
    let cfg = syms["cfg"];
    let nodes = syms["nodes"];
    assert_eq!(eval_at_rest(TYPED_NOPIE, "cfg").addr, cfg);
    assert_eq!(
        eval_at_rest(TYPED_NOPIE, "cfg.limits[2].max").addr,
        cfg + 16 + 2 * 8 + 4
    );
    assert_eq!(eval_at_rest(TYPED_NOPIE, "cfg.name[5]").addr, cfg + 45);
    assert_eq!(eval_at_rest(TYPED_NOPIE, "nodes[2].value").addr, nodes + 32);
    assert_eq!(
        eval_at_rest(TYPED_NOPIE, "parse::depth").addr,
        syms["depth.0"]
    );
    // Two `calls` statics (bump in typed.c, bump_b in typed_b.c) and two `file_static`s.
    let calls: Vec<u64> = ["bump::calls", "bump_b::calls"]
        .iter()
        .map(|e| eval_at_rest(TYPED_NOPIE, e).addr)
        .collect();
    let mut nm_calls = vec![syms["calls.0"], syms["calls.1"]];
    nm_calls.sort();
    let mut sorted = calls.clone();
    sorted.sort();
    assert_eq!(sorted, nm_calls);
    assert_ne!(calls[0], calls[1]);
    let a = eval_at_rest(TYPED_NOPIE, "'typed.c'::file_static");
    let b = eval_at_rest(TYPED_NOPIE, "'typed_b.c'::file_static");
    assert_ne!(a.addr, b.addr);
    assert_eq!(shown(TYPED_NOPIE, &a), "11");
    assert_eq!(shown(TYPED_NOPIE, &b), "22");
    assert_eq!(
        shown(TYPED_NOPIE, &eval_at_rest(TYPED_NOPIE, "bump::calls")),
        "100"
    );
    assert_eq!(
        shown(TYPED_NOPIE, &eval_at_rest(TYPED_NOPIE, "'bump_b'::calls")),
        "200"
    );
}

#[test]
fn pointer_reads_list_every_pointer_in_order() {
    let syms = nm(TYPED_NOPIE);
    let (head, nodes) = (syms["head"], syms["nodes"]);
    let ev = eval_at_rest(TYPED_NOPIE, "head->next->value");
    assert_eq!(ev.addr, nodes + 16);
    assert_eq!(ev.len, 8);
    assert_eq!(
        ev.pointer_reads,
        vec![
            PointerRead {
                addr: head,
                len: 8,
                value: nodes
            },
            PointerRead {
                addr: nodes + 8,
                len: 8,
                value: nodes + 16
            },
        ]
    );
    let ev = eval_at_rest(TYPED_NOPIE, "cur->peer->state");
    let (cur, conns) = (syms["cur"], syms["conns"]);
    assert_eq!(ev.addr, conns + 16 + 4);
    assert_eq!(
        ev.pointer_reads,
        vec![
            PointerRead {
                addr: cur,
                len: 8,
                value: conns
            },
            PointerRead {
                addr: conns + 8,
                len: 8,
                value: conns + 16
            },
        ]
    );
    // No pointer on the way: nothing read. A cast of a constant reads nothing either.
    assert!(eval_at_rest(TYPED_NOPIE, "cfg.limits[1].min")
        .pointer_reads
        .is_empty());
    assert!(eval_at_rest(TYPED_NOPIE, &format!("*(long *){nodes:#x}"))
        .pointer_reads
        .is_empty());
    // `int_ptr[2]` reads int_ptr once.
    let ev = eval_at_rest(TYPED_NOPIE, "int_ptr[2]");
    assert_eq!(ev.pointer_reads.len(), 1);
    assert_eq!(ev.pointer_reads[0].addr, syms["int_ptr"]);
    assert_eq!(ev.addr, syms["matrix"] + 12 + 8);
}

#[test]
fn members_are_named_from_the_expression() {
    let cfg = eval_at_rest(TYPED_NOPIE, "cfg");
    assert_eq!(cfg.ty.as_ref().unwrap().name, "config_t");
    assert_eq!(cfg.member_at(0), "cfg.id");
    assert_eq!(cfg.member_at(6), "cfg.tag");
    assert_eq!(cfg.member_at(28), "cfg.limits[1].max");
    assert_eq!(cfg.member_at(45), "cfg.name[5]");
    assert_eq!(cfg.member_at(64), "cfg.perm");
    let head = eval_at_rest(TYPED_NOPIE, "*head");
    assert_eq!(head.member_at(8), "(*head).next");
    let limits = eval_at_rest(TYPED_NOPIE, "cfg.limits");
    assert_eq!(limits.member_at(20), "cfg.limits[2].max");
    let matrix = eval_at_rest(TYPED_NOPIE, "matrix");
    assert_eq!(matrix.member_at(20), "matrix[1][2]");
}

#[test]
fn struct_and_array_diffs_list_changed_members() {
    let cfg = eval_at_rest(TYPED_NOPIE, "cfg");
    let ty = cfg.ty.clone().unwrap();
    let mut read = file_memory(TYPED_NOPIE);
    let mut old = vec![0u8; cfg.len as usize];
    assert!(read(cfg.addr, &mut old));
    let mut new = old.clone();
    new[16 + 2 * 8 + 4..16 + 2 * 8 + 8].copy_from_slice(&7i32.to_le_bytes());
    new[6] = b't';
    new[41] = b'X';
    new[60..64].copy_from_slice(&0u32.to_le_bytes());
    let changes: Vec<String> = diff_values("cfg", &ty, &old, &new, Language::C, &mut |_| None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        changes,
        vec![
            "cfg.tag: 115 's' -> 116 't'",
            "cfg.limits[2].max: 5 -> 7",
            "cfg.name: \"abc\\000\\000\\000\\000\" -> \"aXc\\000\\000\\000\\000\"",
            "cfg.mode: MODE_AUTO -> MODE_OFF",
        ]
    );
    let matrix = eval_at_rest(TYPED_NOPIE, "matrix");
    let mut old = vec![0u8; 24];
    assert!(read(matrix.addr, &mut old));
    let mut new = old.clone();
    new[4..8].copy_from_slice(&(-2i32).to_le_bytes());
    let changes: Vec<String> = diff_values(
        "matrix",
        matrix.ty.as_ref().unwrap(),
        &old,
        &new,
        Language::C,
        &mut |_| None,
    )
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(changes, vec!["matrix[0][1]: 2 -> -2"]);
}

/// The C integer type `--if` compares in, from real DWARF: `int`, `uint32_t`, an enum, a
/// flag enum, `signed char` (the comparison itself is `hwbp_core::compare`'s, pinned against
/// gcc there).
#[test]
fn conditions_compare_in_the_type() {
    let value = |text: &str| {
        let ev = eval_at_rest(TYPED_NOPIE, text);
        let mut read = file_memory(TYPED_NOPIE);
        let mut bytes = vec![0u8; ev.len as usize];
        assert!(read(ev.addr, &mut bytes));
        (ev.ty.unwrap(), bytes)
    };
    let holds = |cond: &str, (ty, bytes): &(Type, Vec<u8>)| {
        let (op, literal) = CompareOp::split(cond).unwrap();
        let int_type = ty
            .int_type()
            .unwrap_or_else(|| panic!("{} is no integer", ty.name));
        let mut raw = [0u8; 8];
        raw[..bytes.len()].copy_from_slice(bytes);
        IntCondition::resolve(op, Literal::parse(literal).unwrap(), int_type)
            .holds(u64::from_le_bytes(raw))
    };
    let counter = value("counter"); // int -1
    assert!(holds("<0", &counter));
    assert!(holds("==-1", &counter));
    assert!(!holds(">0", &counter));
    assert!(!holds("==4294967295", &counter));
    let u32v = value("u32"); // uint32_t 4000000000
    assert!(holds(">0", &u32v));
    assert!(holds("==4000000000", &u32v));
    assert!(!holds("<0", &u32v));
    assert!(!holds(">-1", &u32v), "-1 converts to UINT_MAX");
    let mode = value("cfg.mode"); // MODE_AUTO = 5
    assert!(holds("==5", &mode));
    assert!(holds("<=5", &mode) && !holds("<5", &mode));
    let perm = value("cfg.perm");
    assert!(holds("&0x2", &perm));
    let sc = value("sc"); // signed char -56
    assert!(holds("<-55", &sc));
    assert!(holds(">=-56", &sc));
    assert_eq!(
        value("f64").0.int_type(),
        None,
        "a double is compared as a float"
    );
}

/// Item 4's bad inputs, each one line naming the problem and what would work.
#[test]
fn bad_inputs_say_what_is_wrong_and_what_works() {
    let e = |text: &str| eval_error(TYPED_NOPIE, text);
    assert_eq!(
        e("cfg.limit"),
        "cfg has no member 'limit': config_t has id, level, tag, enabled, range, limits, name, \
         ratio, scale, mode, perm"
    );
    assert_eq!(
        e("head->val"),
        "*head has no member 'val': struct node has value, next"
    );
    assert_eq!(
        e("counter[1]"),
        "cannot index counter: it is int, not an array or a pointer"
    );
    assert_eq!(
        e("*counter"),
        "cannot dereference counter: it is int, not a pointer; cast it if it holds an address: \
         *(T *)counter"
    );
    assert_eq!(
        e("cfg->id"),
        "cannot dereference cfg: it is config_t, not a pointer; use '.' for a struct: cfg.member"
    );
    assert_eq!(
        e("head.next"),
        "head is struct node *, not a struct or union: '.next' needs a struct; it is a pointer: \
         use head->next"
    );
    assert_eq!(
        e("parse::tmp"),
        "'parse::tmp' has no fixed address: it is a local variable that moves between registers \
         and the stack; watch a global or static variable, or evaluate once at a stop and watch \
         the address with -l/--location"
    );
    assert_eq!(
        e("cfg.limits[3]"),
        "index 3 is out of range for cfg.limits: struct limit [3] has elements 0..=2"
    );
    assert_eq!(
        e("matrix[1][3]"),
        "index 3 is out of range for matrix[1]: int [3] has elements 0..=2"
    );
    assert_eq!(
        e("null_conn->state"),
        "null_conn is a NULL pointer, so null_conn->state does not exist yet; watch null_conn \
         itself, or evaluate when it is set"
    );
    assert_eq!(
        e("head->next->next->next->value"),
        "head->next->next->next is a NULL pointer, so head->next->next->next->value does not \
         exist yet; watch head->next->next->next itself, or evaluate when it is set"
    );
    assert_eq!(
        e("*(struct nope *)&cfg"),
        "unknown type 'struct nope' in the cast: not a C base type and no struct, union, enum or \
         typedef of that name in the debug info; use e.g. *(unsigned long *)ADDR or *(struct \
         NAME *)ADDR"
    );
    assert_eq!(
        e("*(widget_t *)0x10"),
        "unknown type 'widget_t' in the cast: not a C base type and no struct, union, enum or \
         typedef of that name in the debug info; use e.g. *(unsigned long *)ADDR or *(struct \
         NAME *)ADDR"
    );
    assert_eq!(
        e("*vp"),
        "cannot dereference vp: it is a void pointer; cast it to the pointed-to type: *(T *)vp"
    );
    assert_eq!(
        e("file_static"),
        "'file_static' is a static variable in several files (typed.c, typed_b.c): name one, \
         e.g. 'typed.c'::file_static"
    );
    assert_eq!(
        e("countr"),
        "no variable 'countr' in the debug info or symbols of the program; did you mean counter?"
    );
    assert_eq!(
        e("&counter"),
        "&counter is a value, not a location in memory: dereference it (*&counter) to watch what \
         it points at"
    );
    assert_eq!(
        e("(int *)0x10"),
        "(int *)0x10 is a value, not a location in memory: dereference it (*(int *)0x10) to \
         watch what it points at"
    );
}

#[test]
fn cxx_namespaces_and_static_members_agree_with_gdb() {
    let exprs = [
        "net::port",
        "net::inner::depth",
        "Registry::count",
        "Registry::corners",
        "Registry::corners[1].x",
        "geo::origin",
        "geo::origin.y",
        "derived",
        "derived.a",
        "derived.on",
        "derived.b",
    ];
    let from_gdb = gdb(SCOPED, "c++", &exprs);
    for (text, (addr, size, value)) in exprs.iter().zip(from_gdb) {
        let ev = eval_at_rest(SCOPED, text);
        assert_eq!((ev.addr, ev.len), (addr, size), "{text}");
        assert_eq!(shown(SCOPED, &ev), value, "{text}");
    }
    assert_eq!(
        eval_error(SCOPED, "Registry::instance_only"),
        "Registry::instance_only is a non-static member of class Registry: it has no address of \
         its own; watch it in an object of that type (OBJECT.instance_only or \
         POINTER->instance_only)"
    );
}

#[test]
fn rust_statics_by_crate_and_module_path_agree_with_gdb() {
    // gdb in Rust mode (the language of these units): address, size and value.
    let exprs = [
        "rust_statics::config::SETTINGS",
        "rust_statics::config::SETTINGS.id",
        "rust_statics::config::SETTINGS.limits",
        "rust_statics::config::SETTINGS.limits[1].max",
        "rust_statics::config::SETTINGS.verbose",
        "rust_statics::config::COUNTER",
        "rust_statics::config::BYTES",
        "rust_statics::config::LETTER",
        "rust_statics::config::RATIO",
        "rust_statics::config::NEG",
        "rust_statics::config::ORIGIN",
        "rust_statics::config::LIMIT_PTR",
    ];
    let mut command = Command::new("gdb");
    command.args(["-nx", "-batch"]);
    for e in exprs {
        command.arg("-ex").arg(format!("print &{e}"));
        command.arg("-ex").arg(format!("print sizeof({e})"));
        command.arg("-ex").arg(format!("print {e}"));
    }
    let out = command.arg(RUST_STATICS).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('$'))
        .map(|l| l.split_once(" = ").unwrap().1)
        .collect();
    assert_eq!(answers.len(), exprs.len() * 3, "{stdout}");
    for (i, text) in exprs.iter().enumerate() {
        let ev = eval_at_rest(RUST_STATICS, text);
        assert_eq!(ev.language, Language::Rust, "{text}");
        assert_eq!(ev.addr, first_hex(answers[3 * i]), "{text}: address");
        assert_eq!(ev.len.to_string(), answers[3 * i + 1], "{text}: size");
        let mut read = file_memory(RUST_STATICS);
        let mut bytes = vec![0u8; ev.len as usize];
        assert!(read(ev.addr, &mut bytes));
        let shown = format_value_in(ev.language, ev.ty.as_ref().unwrap(), &bytes, &mut |_| None);
        let gdb_value = match answers[3 * i + 2].split_once(") ") {
            Some((prefix, rest)) if prefix.starts_with("(*") => rest,
            _ => answers[3 * i + 2],
        };
        assert_eq!(shown, gdb_value, "{text}: value");
    }
}

/// The PIE build, running: addresses carry the load bias, pointers are read live, and a
/// retargeted pointer moves the expression.
#[test]
fn live_process_evaluation_follows_the_load_bias_and_pointer_changes() {
    let mut fixture = Fixture::spawn(TYPED, &[]).unwrap();
    let pid = fixture.pid() as u32;
    let ready = fixture.ready().clone();
    let symbols = ProcessSymbols::load(pid).unwrap();
    let modules = LoadedModule::for_process(&symbols);
    assert_eq!(modules[0].debug.path(), Path::new(TYPED));
    let scope = Scope {
        modules: &modules,
        symbols: Some(&symbols),
    };
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let read = |addr: u64, buf: &mut [u8]| mem.read_exact_at(buf, addr).is_ok();
    let eval = |text: &str| {
        let mut read = read;
        evaluate(&parse(text).unwrap(), &scope, &mut read).unwrap()
    };
    let number = |key: &str| {
        u64::from_str_radix(ready.field(key).unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    assert_eq!(eval("cfg").addr, fixture.addr());
    let state = eval("cur->state");
    assert_eq!(state.pointer_reads[0].addr, number("cur"));
    let conns = eval("conns").addr;
    assert_eq!(state.addr, conns + 4);
    assert_eq!(
        symbols.data_symbol(state.pointer_reads[0].value).as_deref(),
        Some("conns")
    );
    assert_eq!(symbols.data_symbol(conns + 20).as_deref(), Some("conns+20"));

    let value_of = |ev: &Evaluated| {
        let mut bytes = vec![0u8; ev.len as usize];
        assert!(mem.read_exact_at(&mut bytes, ev.addr).is_ok());
        format_value(ev.ty.as_ref().unwrap(), &bytes, &mut |a| {
            symbols.data_symbol(a)
        })
    };
    fixture.command("max 9").unwrap();
    assert_eq!(value_of(&eval("cfg.limits[2].max")), "9");
    assert_eq!(value_of(&eval("cur")), format!("{conns:#x} <conns>"));
    fixture.command("retarget").unwrap();
    let moved = eval("cur->state");
    assert_eq!(moved.addr, conns + 16 + 4);
    assert_eq!(moved.pointer_reads[0].value, conns + 16);
    fixture.command("state -4").unwrap();
    assert_eq!(value_of(&moved), "-4");
    assert_eq!(
        value_of(&eval("cur")),
        format!("{:#x} <conns+16>", conns + 16)
    );
    // Typeless fallback: a symbol without DWARF resolves through the ELF tables.
    let modules_without_dwarf: Vec<LoadedModule> = Vec::new();
    let bare = Scope {
        modules: &modules_without_dwarf,
        symbols: Some(&symbols),
    };
    let mut read = read;
    let untyped = evaluate(&parse("counter").unwrap(), &bare, &mut read).unwrap();
    assert_eq!(
        (untyped.addr, untyped.len, untyped.ty),
        (eval("counter").addr, 4, None)
    );
    let err = evaluate(&parse("cfg.id").unwrap(), &bare, &mut read).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cfg has no type information (no DWARF for it): only the whole symbol can be watched; \
         rebuild with -g, install its debug file, or cast: *(T *)&cfg"
    );
    // A cast of a typeless symbol's address gives it a type.
    let cast = evaluate(&parse("*(short *)&counter").unwrap(), &bare, &mut read).unwrap();
    assert_eq!((cast.addr, cast.len), (untyped.addr, 2));
    assert_eq!(cast.ty.unwrap().name, "short int");
    // An address no symbol covers (the ELF header page) is module+offset, in the executable
    // and in Debian's libc.
    let base = symbols.modules()[0].bias;
    assert_eq!(symbols.describe_code(base + 0x10), "typed+0x10");
    assert_eq!(symbols.module_offset(base + 0x10).unwrap().offset, 0x10);
    let libc = symbols
        .modules()
        .into_iter()
        .find(|m| m.path.file_name().is_some_and(|n| n == "libc.so.6"))
        .expect("typed links libc.so.6");
    assert_eq!(symbols.describe_code(libc.span.0 + 0x10), "libc.so.6+0x10");
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hwbp-debuglink-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}");
}

/// A stripped copy of `typed_nopie` and its `--only-keep-debug` file `typed.debug` in `dir`.
fn split_debug(dir: &Path) -> (PathBuf, PathBuf) {
    let debug = dir.join("typed.debug");
    let stripped = dir.join("typed");
    run(
        "objcopy",
        &["--only-keep-debug", TYPED_NOPIE, debug.to_str().unwrap()],
    );
    run(
        "strip",
        &[
            "--strip-debug",
            "-o",
            stripped.to_str().unwrap(),
            TYPED_NOPIE,
        ],
    );
    run(
        "objcopy",
        &[
            &format!("--add-gnu-debuglink={}", debug.display()),
            stripped.to_str().unwrap(),
        ],
    );
    (stripped, debug)
}

fn build_id_hex() -> String {
    let data = std::fs::read(TYPED_NOPIE).unwrap();
    let file = object::File::parse(&*data).unwrap();
    hwbp_symbols::debuglink::to_hex(file.build_id().unwrap().unwrap())
}

fn limits_max(debug: ModuleDebug) -> u64 {
    let modules = vec![LoadedModule {
        debug: Arc::new(debug),
        bias: 0,
    }];
    let scope = Scope {
        modules: &modules,
        symbols: None,
    };
    evaluate(&parse("cfg.limits[2].max").unwrap(), &scope, &mut |_, _| {
        false
    })
    .unwrap()
    .addr
}

#[test]
fn separate_debug_files_are_found_as_gdb_finds_them() {
    let expected = eval_at_rest(TYPED_NOPIE, "cfg.limits[2].max").addr;
    let none = DebugSearch {
        debug_dirs: vec![],
        debuginfod_cache: None,
    };

    // .gnu_debuglink next to the binary, then in .debug/.
    let dir = scratch("link");
    let (stripped, debug) = split_debug(&dir);
    let found = ModuleDebug::load_with(&stripped, &none).unwrap();
    assert_eq!(found.debug_source(), DebugSource::DebugLink);
    assert_eq!(found.debug_file(), dir.join("typed.debug"));
    assert_eq!(limits_max(found), expected);
    // The default search (a whole-struct watch's field names) finds it too.
    let cfg = ModuleDebug::load(&stripped)
        .unwrap()
        .global_type("cfg")
        .unwrap();
    assert_eq!(cfg.member_path("cfg", 28), "cfg.limits[1].max");
    std::fs::create_dir_all(dir.join(".debug")).unwrap();
    std::fs::rename(&debug, dir.join(".debug/typed.debug")).unwrap();
    let found = ModuleDebug::load_with(&stripped, &none).unwrap();
    assert_eq!(found.debug_file(), dir.join(".debug/typed.debug"));

    // A debug file whose CRC does not match is not used.
    std::fs::write(dir.join(".debug/typed.debug"), b"not the debug file").unwrap();
    let err = ModuleDebug::load_with(&stripped, &none).unwrap_err();
    assert!(
        matches!(err, hwbp_symbols::types::DwarfError::NoDebugInfo { .. }),
        "{err}"
    );

    // Build ID under a global debug directory, before the debuglink.
    let dir = scratch("buildid");
    let (stripped, debug) = split_debug(&dir);
    let hex = build_id_hex();
    let global = dir.join("global");
    let by_id = global
        .join(".build-id")
        .join(&hex[..2])
        .join(format!("{}.debug", &hex[2..]));
    std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
    std::fs::rename(&debug, &by_id).unwrap();
    let search = DebugSearch {
        debug_dirs: vec![global.clone()],
        debuginfod_cache: None,
    };
    let found = ModuleDebug::load_with(&stripped, &search).unwrap();
    assert_eq!(found.debug_source(), DebugSource::BuildId);
    assert_eq!(found.debug_file(), by_id);
    assert_eq!(limits_max(found), expected);

    // /usr/lib/debug/<dir>/NAME form under the global directory.
    let mirrored = global
        .join(
            std::fs::canonicalize(&dir)
                .unwrap()
                .strip_prefix("/")
                .unwrap(),
        )
        .join("typed.debug");
    std::fs::create_dir_all(mirrored.parent().unwrap()).unwrap();
    std::fs::rename(&by_id, &mirrored).unwrap();
    let found = ModuleDebug::load_with(&stripped, &search).unwrap();
    assert_eq!(found.debug_source(), DebugSource::DebugLink);
    assert_eq!(found.debug_file(), mirrored);

    // An existing debuginfod cache entry.
    let cache = dir.join("cache");
    let entry = cache.join(&hex).join("debuginfo");
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    std::fs::rename(&mirrored, &entry).unwrap();
    let found = ModuleDebug::load_with(
        &stripped,
        &DebugSearch {
            debug_dirs: vec![global],
            debuginfod_cache: Some(cache),
        },
    )
    .unwrap();
    assert_eq!(found.debug_source(), DebugSource::DebuginfodCache);
    assert_eq!(found.debug_file(), entry);
    assert_eq!(limits_max(found), expected);
}

/// Debian's own libc, whose DWARF is only in libc6-dbg's
/// `/usr/lib/debug/.build-id/xx/rest.debug`: types and a file static (`'malloc.c'::main_arena`)
/// come from there, and agree with gdb on the same file.
#[test]
fn debian_libc_types_come_from_its_build_id_debug_file() {
    const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
    let debug = ModuleDebug::load(Path::new(LIBC)).unwrap();
    assert_eq!(debug.debug_source(), DebugSource::BuildId);
    assert!(debug.debug_file().starts_with("/usr/lib/debug/.build-id/"));
    let exprs = [
        "_IO_2_1_stdout_.file._fileno",
        "_IO_2_1_stderr_.file._fileno",
        "'malloc.c'::main_arena.attached_threads",
        "main_arena.mutex",
        "_IO_2_1_stdout_.vtable",
    ];
    let mut command = Command::new("gdb");
    command.args(["-nx", "-batch"]);
    for e in exprs {
        command.arg("-ex").arg(format!("print &({e})"));
        command.arg("-ex").arg(format!("print sizeof({e})"));
        command.arg("-ex").arg(format!("print {e}"));
    }
    let out = command.arg(LIBC).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('$'))
        .map(|l| l.split_once(" = ").unwrap().1)
        .collect();
    assert_eq!(answers.len(), exprs.len() * 3, "{stdout}");
    let modules = vec![LoadedModule {
        debug: Arc::new(debug),
        bias: 0,
    }];
    let scope = Scope {
        modules: &modules,
        symbols: None,
    };
    for (i, text) in exprs.iter().enumerate() {
        let mut read = file_memory(LIBC);
        let ev = evaluate(&parse(text).unwrap(), &scope, &mut read).unwrap();
        assert_eq!(ev.addr, first_hex(answers[3 * i]), "{text}: address");
        assert_eq!(ev.len.to_string(), answers[3 * i + 1], "{text}: size");
        if i < 3 {
            let mut bytes = vec![0u8; ev.len as usize];
            assert!(read(ev.addr, &mut bytes));
            let shown = format_value(ev.ty.as_ref().unwrap(), &bytes, &mut |_| None);
            assert_eq!(shown, answers[3 * i + 2], "{text}: value");
        }
    }
}

/// gcc's link-time optimization splits a variable over units: the declaration (name, type) in
/// the early-debug unit, the location in an LTRANS unit that refers back across units
/// (`DW_AT_abstract_origin` with `DW_FORM_ref_addr`). gdb follows it; so must we.
#[test]
fn lto_builds_resolve_across_units_and_agree_with_gdb() {
    let dir = scratch("lto");
    let binary = dir.join("typed_lto");
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hwbp-fixtures/c");
    run(
        "gcc",
        &[
            "-g",
            "-O2",
            "-flto",
            "-no-pie",
            "-I",
            c.to_str().unwrap(),
            "-o",
            binary.to_str().unwrap(),
            c.join("typed.c").to_str().unwrap(),
            c.join("typed_b.c").to_str().unwrap(),
        ],
    );
    let binary = binary.to_str().unwrap();
    let exprs = [
        "cfg.limits[2].max",
        "cfg",
        "head->next->value",
        "cur->peer->state",
        "counter",
        "matrix[1][2]",
    ];
    for (text, (addr, size, value)) in exprs.iter().zip(gdb(binary, "c", &exprs)) {
        let ev = eval_at_rest(binary, text);
        assert_eq!((ev.addr, ev.len), (addr, size), "{text}");
        assert_eq!(shown(binary, &ev), value, "{text}");
    }
}
