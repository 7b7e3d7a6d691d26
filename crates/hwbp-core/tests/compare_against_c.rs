//! Differential test of `hwbp_core::compare` against C itself: gcc compiles every comparison
//! of every integer type with a set of literals on generated values, and the program's answers
//! must equal `IntCondition::holds` one for one (LP64, as on this machine).

use std::fmt::Write as _;
use std::process::Command;

use hwbp_core::compare::{CompareOp, IntCondition, IntType, Literal};

const TYPES: [(&str, IntType); 8] = [
    ("signed char", IntType::signed(1)),
    ("unsigned char", IntType::unsigned(1)),
    ("short", IntType::signed(2)),
    ("unsigned short", IntType::unsigned(2)),
    ("int", IntType::signed(4)),
    ("unsigned int", IntType::unsigned(4)),
    ("long", IntType::signed(8)),
    ("unsigned long", IntType::unsigned(8)),
];

const LITERALS: [&str; 22] = [
    "0",
    "-1",
    "5",
    "-5",
    "127",
    "128",
    "255",
    "256",
    "-129",
    "0x80",
    "0xff",
    "0x7fffffff",
    "0x80000000",
    "0xffffffff",
    "4294967295",
    "4294967296",
    "-2147483648",
    "2147483648",
    "0x8000000000000000",
    "9223372036854775807",
    "-0x10",
    "0xfffffffffffffff0",
];

const OPS: [CompareOp; 7] = [
    CompareOp::Equal,
    CompareOp::NotEqual,
    CompareOp::Less,
    CompareOp::LessEqual,
    CompareOp::Greater,
    CompareOp::GreaterEqual,
    CompareOp::AnyBit,
];

/// Raw bit patterns: the boundaries of every width and a xorshift sequence.
fn values() -> Vec<u64> {
    let mut v = vec![
        0, 1, 2, 3, 5, 6, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff,
    ];
    v.extend([
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        4_000_000_000,
        0x1_0000_0000,
    ]);
    v.extend([
        i64::MAX as u64,
        1 << 63,
        u64::MAX,
        u64::MAX - 4,
        u64::MAX - 15,
    ]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x);
        v.push(x & 0xffff_ffff);
        v.push(x & 0xff);
    }
    v
}

#[test]
fn every_comparison_answers_as_gcc_compiles_it() {
    let values = values();
    let mut source = String::from("#include <stdio.h>\nint main(void) {\n");
    let mut expected = String::new();
    for (c_type, ty) in TYPES {
        for literal in LITERALS {
            let parsed = Literal::parse(literal).unwrap();
            for op in OPS {
                let condition = IntCondition::resolve(op, parsed, ty);
                for &raw in &values {
                    // C converts the raw bits to the type (gcc wraps modulo 2^N).
                    let test = match op {
                        CompareOp::AnyBit => format!("((x & {literal}) != 0)"),
                        _ => format!("(x {} {literal})", op.symbol()),
                    };
                    writeln!(
                        source,
                        "{{ volatile {c_type} x = ({c_type})0x{raw:x}ULL; putchar({test} ? '1' : '0'); }}"
                    )
                    .unwrap();
                    expected.push(if condition.holds(raw) { '1' } else { '0' });
                }
            }
        }
    }
    source.push_str("return 0;\n}\n");
    let dir = std::env::temp_dir().join(format!("hwbp-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c_file = dir.join("compare.c");
    let exe = dir.join("compare");
    std::fs::write(&c_file, &source).unwrap();
    let gcc = Command::new("gcc")
        .args(["-O0", "-w", "-o"])
        .arg(&exe)
        .arg(&c_file)
        .output()
        .expect("gcc (installed by scripts/install-test-deps.sh)");
    assert!(
        gcc.status.success(),
        "{}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(run.status.success());
    let actual = String::from_utf8(run.stdout).unwrap();
    assert_eq!(actual.len(), expected.len());
    let per_case = values.len();
    let mismatches: Vec<String> = actual
        .chars()
        .zip(expected.chars())
        .enumerate()
        .filter(|(_, (a, e))| a != e)
        .take(10)
        .map(|(i, (a, _))| {
            let raw = values[i % per_case];
            let op = OPS[(i / per_case) % OPS.len()];
            let literal = LITERALS[(i / per_case / OPS.len()) % LITERALS.len()];
            let c_type = TYPES[i / per_case / OPS.len() / LITERALS.len()].0;
            format!("({c_type})0x{raw:x} {op} {literal}: C says {a}")
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} cases, mismatches: {mismatches:#?}",
        expected.len()
    );
    assert!(expected.contains('0') && expected.contains('1'));
}
