//! Naming the bytes of a global with `hwbp_symbols::types` ([`Type::member_path`],
//! [`Type::leaves`], [`ModuleDebug::global_type`]) on real gcc output: a C program with a
//! 64-byte struct (nested struct, array of structs, char array, anonymous union), a
//! bit-field/2-D array struct and qualified typedefs, compiled with `gcc -g` into a temporary
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use hwbp_symbols::types::{DwarfError, Leaf, ModuleDebug, Type};
use hwbp_symbols::{ResolvedSymbol, SymbolKind};

const SOURCE: &str = r#"
#include <stdint.h>

struct limit { int32_t min; int32_t max; };

struct config {
    uint32_t id;               /*  0 */
    uint16_t flags;            /*  4, then 2 bytes of padding */
    struct limit range;        /*  8 */
    struct limit limits[3];    /* 16 */
    char name[12];             /* 40 */
    union {                    /* 52 */
        uint32_t word;
        uint8_t bytes[4];
    };
    double ratio;              /* 56 */
};
_Static_assert(sizeof(struct config) == 64, "config is 64 bytes");

typedef struct config config_t;

struct matrix {
    int16_t grid[2][3];        /*  0 */
    unsigned low : 3;          /* 12, bits 0-2 */
    unsigned high : 5;         /* 12, bits 3-7 */
    unsigned wide : 12;        /* 13, bits 0-11 */
};

config_t cfg = { .id = 1 };
volatile const config_t frozen = { .id = 2 };
struct matrix mat;
long counter;

int main(void) { cfg.limits[2].max = 5; mat.grid[1][2] = 3; return (int)counter + frozen.id; }
"#;

/// The program with (`true`) or without `-g`, built once per test binary run, in a directory
/// named after this process (tests run in parallel threads and share the builds).
fn program(debug: bool) -> PathBuf {
    static BUILDS: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILDS[usize::from(debug)]
        .get_or_init(|| build(debug))
        .clone()
}

fn build(debug: bool) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hwbp-dwarf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join(if debug { "layout-g.c" } else { "layout-nog.c" });
    std::fs::write(&source, SOURCE).unwrap();
    let out = dir.join(if debug { "layout-g" } else { "layout-nog" });
    let mut gcc = Command::new("gcc");
    gcc.arg("-O0").arg("-o").arg(&out).arg(&source);
    if debug {
        gcc.arg("-g");
    }
    let status = gcc.status().expect("gcc runs");
    assert!(status.success(), "gcc failed");
    out
}

/// The type of global `name` in the ELF file at `path`.
fn layout(path: &Path, name: &str) -> Type {
    global_type(path, name).unwrap()
}

fn global_type(path: &Path, name: &str) -> Result<Type, DwarfError> {
    ModuleDebug::load(path)?.global_type(name)
}

#[test]
fn names_every_byte_of_a_64_byte_struct() {
    let cfg = layout(&program(true), "cfg");
    assert_eq!(cfg.size, 64);
    assert_eq!(cfg.name, "config_t");
    let expected = [
        (0, "cfg.id"),
        (3, "cfg.id"),
        (4, "cfg.flags"),
        (6, "cfg+0x6"),
        (7, "cfg+0x7"),
        (8, "cfg.range.min"),
        (12, "cfg.range.max"),
        (16, "cfg.limits[0].min"),
        (20, "cfg.limits[0].max"),
        (28, "cfg.limits[1].max"),
        (32, "cfg.limits[2].min"),
        (39, "cfg.limits[2].max"),
        (40, "cfg.name[0]"),
        (45, "cfg.name[5]"),
        (51, "cfg.name[11]"),
        (52, "cfg.word"),
        (55, "cfg.word"),
        (56, "cfg.ratio"),
        (63, "cfg.ratio"),
        (64, "cfg+0x40"),
    ];
    for (offset, name) in expected {
        assert_eq!(cfg.member_path("cfg", offset), name, "offset {offset}");
    }
}

#[test]
fn flat_leaves_of_the_struct_in_order() {
    let cfg = layout(&program(true), "cfg");
    let leaves = cfg.leaves("cfg");
    // id, flags, range.{min,max}, limits[0..3].{min,max}, name[0..12], word, bytes[0..4], ratio
    assert_eq!(leaves.len(), 1 + 1 + 2 + 6 + 12 + 1 + 4 + 1);
    let leaf = |offset, size, path: &str| Leaf {
        offset,
        size,
        path: path.to_string(),
    };
    assert_eq!(leaves[0], leaf(0, 4, "cfg.id"));
    assert_eq!(leaves[1], leaf(4, 2, "cfg.flags"));
    assert_eq!(leaves[2], leaf(8, 4, "cfg.range.min"));
    assert_eq!(leaves[9], leaf(36, 4, "cfg.limits[2].max"));
    assert_eq!(leaves[10], leaf(40, 1, "cfg.name[0]"));
    assert_eq!(leaves[22], leaf(52, 4, "cfg.word"));
    assert_eq!(leaves[23], leaf(52, 1, "cfg.bytes[0]"));
    assert_eq!(leaves[26], leaf(55, 1, "cfg.bytes[3]"));
    assert_eq!(leaves[27], leaf(56, 8, "cfg.ratio"));
    // Every byte but the padding at 6..8 is covered.
    let covered: u64 = (0..64)
        .filter(|b| {
            leaves
                .iter()
                .any(|l| l.offset <= *b && *b < l.offset + l.size)
        })
        .count() as u64;
    assert_eq!(covered, 62);
}

#[test]
fn qualifiers_and_typedefs_are_looked_through() {
    let frozen = layout(&program(true), "frozen");
    assert_eq!(frozen.size, 64);
    // The model names a qualified type by the type it qualifies, as values print it.
    assert_eq!(frozen.name, "config_t");
    assert_eq!(frozen.fields().map(<[_]>::len), Some(7));
    assert_eq!(frozen.member_path("frozen", 36), "frozen.limits[2].max");
}

#[test]
fn two_dimensional_arrays_and_bit_fields() {
    let mat = layout(&program(true), "mat");
    assert_eq!(mat.size, 16);
    let name_at = |offset| mat.member_path("mat", offset);
    assert_eq!(name_at(0), "mat.grid[0][0]");
    assert_eq!(name_at(6), "mat.grid[1][0]");
    assert_eq!(name_at(10), "mat.grid[1][2]");
    assert_eq!(name_at(12), "mat.low");
    assert_eq!(name_at(13), "mat.wide");
    assert_eq!(name_at(14), "mat.wide");
    assert_eq!(name_at(15), "mat+0xf");
    let leaves = mat.leaves("mat");
    let paths: Vec<(u64, u64, &str)> = leaves
        .iter()
        .map(|l| (l.offset, l.size, l.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            (0, 2, "mat.grid[0][0]"),
            (2, 2, "mat.grid[0][1]"),
            (4, 2, "mat.grid[0][2]"),
            (6, 2, "mat.grid[1][0]"),
            (8, 2, "mat.grid[1][1]"),
            (10, 2, "mat.grid[1][2]"),
            (12, 1, "mat.low"),
            (12, 1, "mat.high"),
            (13, 2, "mat.wide"),
        ]
    );
}

#[test]
fn scalars_and_resolved_symbols() {
    let path = program(true);
    let counter = layout(&path, "counter");
    assert_eq!((counter.size, counter.name.as_str()), (8, "long int"));
    assert_eq!(counter.member_path("counter", 5), "counter");
    assert_eq!(counter.leaves("counter").len(), 1);
    let symbol = ResolvedSymbol {
        name: "cfg".to_string(),
        addr: 0x4000,
        size: 64,
        module: path,
        kind: SymbolKind::Data,
    };
    assert_eq!(
        layout(&symbol.module, &symbol.name).member_path(&symbol.name, 20),
        "cfg.limits[0].max"
    );
}

#[test]
fn missing_variable_and_missing_debug_info_are_explained() {
    let err = global_type(&program(true), "countr").unwrap_err();
    assert!(
        matches!(err, DwarfError::NoSuchVariable { ref near, .. } if near == &["counter".to_string()])
    );
    assert!(
        err.to_string().ends_with("; did you mean counter?"),
        "{err}"
    );
    let err = global_type(&program(false), "cfg").unwrap_err();
    assert!(matches!(err, DwarfError::NoDebugInfo { .. }), "{err}");
    assert!(err.to_string().contains("rebuild it with -g"), "{err}");
}

/// A Rust static of this test binary (built with debug info by the dev profile): found by its
/// path, fields named from rustc's DWARF whatever order rustc laid them out in.
#[test]
fn rust_static_by_path() {
    #[allow(dead_code)]
    struct Pair {
        left: u8,
        right: u64,
    }
    #[allow(dead_code)]
    struct Settings {
        pairs: [Pair; 2],
        level: u32,
    }
    static SETTINGS: Settings = Settings {
        pairs: [Pair { left: 1, right: 2 }, Pair { left: 3, right: 4 }],
        level: 5,
    };
    let base = &SETTINGS as *const Settings as u64;
    let field = |p: *const u8| p as u64 - base;
    let exe = std::env::current_exe().unwrap();
    let settings = layout(&exe, "dwarf_layout::rust_static_by_path::SETTINGS");
    assert_eq!(settings.size, std::mem::size_of::<Settings>() as u64);
    let name_at =
        |offset| settings.member_path("dwarf_layout::rust_static_by_path::SETTINGS", offset);
    let right_1 = field(std::ptr::addr_of!(SETTINGS.pairs[1].right).cast());
    let left_0 = field(std::ptr::addr_of!(SETTINGS.pairs[0].left).cast());
    let level = field(std::ptr::addr_of!(SETTINGS.level).cast());
    assert_eq!(
        name_at(right_1 + 7),
        "dwarf_layout::rust_static_by_path::SETTINGS.pairs[1].right"
    );
    assert_eq!(
        name_at(left_0),
        "dwarf_layout::rust_static_by_path::SETTINGS.pairs[0].left"
    );
    assert_eq!(
        name_at(level),
        "dwarf_layout::rust_static_by_path::SETTINGS.level"
    );
    std::hint::black_box(&SETTINGS);
}
