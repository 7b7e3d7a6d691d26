//! `--if` means one thing in both modes (issue 18): on every C integer width and signedness,
//! the in-kernel filter (perf mode, the BPF hit handler) and stop mode report the same hits,
//! those C's own comparison keeps (`hwbp_core::compare`, pinned against gcc in its own
//! differential test). A value without a type compares by the literal's spelling, and a
//! notice says so.
//!
//! Every run launches the `conds` fixture under BPF or ptrace: names start with `exclusive_`.

use hwbp_core::compare::{CompareOp, IntCondition, IntType, Literal};
use hwbp_fixtures::{CONDS, CONDS_SEQUENCE};

mod support;
use support::{hits, json_lines, old_new, run_hwbp, summary};

const VARIABLES: [(&str, IntType); 8] = [
    ("s8", IntType::signed(1)),
    ("u8", IntType::unsigned(1)),
    ("s16", IntType::signed(2)),
    ("u16", IntType::unsigned(2)),
    ("s32", IntType::signed(4)),
    ("u32", IntType::unsigned(4)),
    ("s64", IntType::signed(8)),
    ("u64", IntType::unsigned(8)),
];

const CONDITIONS: [&str; 7] = ["<0", ">5", "<=5", ">=6", "&0x4", "==-1", "!=0xff"];

/// The new values reported for `spec --if condition`, with `extra` flags, and the summary's
/// hits (every write, filtered or not).
fn reported(spec: &str, condition: &str, extra: &[&str]) -> (Vec<u64>, u64, String) {
    let mut args = vec!["watch", spec, "--json", "--if", condition];
    args.extend(extra);
    args.extend(["--", CONDS]);
    let (code, stdout, stderr) = run_hwbp(&args);
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    let values = json_lines(&stdout);
    let news = hits(&values).iter().map(|h| old_new(h).1).collect();
    let total = summary(&values)["watchpoints"][0]["hits"].as_u64().unwrap();
    (news, total, stderr)
}

/// What C keeps: each stored value (converted to the type) for which `x OP literal` holds.
fn expected(ty: IntType, condition: &str) -> Vec<u64> {
    let (op, literal) = CompareOp::split(condition).unwrap();
    let c = IntCondition::resolve(op, Literal::parse(literal).unwrap(), ty);
    let mask = if ty.bytes == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * ty.bytes)) - 1
    };
    CONDS_SEQUENCE
        .iter()
        .map(|v| v & mask)
        .filter(|&v| c.holds(v))
        .collect()
}

#[test]
fn exclusive_if_gives_the_same_hits_with_and_without_stop_on_every_integer_type() {
    for (name, ty) in VARIABLES {
        for condition in CONDITIONS {
            let want = expected(ty, condition);
            let (perf, perf_total, _) = reported(name, condition, &[]);
            let (stop, stop_total, _) = reported(name, condition, &["--stop"]);
            assert_eq!(perf, want, "{name} --if '{condition}' without --stop");
            assert_eq!(stop, want, "{name} --if '{condition}' with --stop");
            assert_eq!(
                (perf_total, stop_total),
                (7, 7),
                "{name}: every write counted"
            );
        }
    }
    // The unsigned int, spelled out: <0 none, >5 three, <=5 four, >=6 three.
    assert!(expected(IntType::unsigned(4), "<0").is_empty());
    assert_eq!(
        expected(IntType::unsigned(4), ">5"),
        [0xffff_ffff, 6, 4_000_000_000]
    );
    assert_eq!(expected(IntType::unsigned(4), "<=5"), [3, 5, 0, 2]);
    // An unsigned char is promoted to int: 0xff > -1 holds, unlike an unsigned int's.
    assert_eq!(expected(IntType::unsigned(1), "==-1"), Vec::<u64>::new());
    assert_eq!(expected(IntType::unsigned(4), "==-1"), [0xffff_ffff]);
}

#[test]
fn exclusive_if_on_a_value_without_a_type_compares_by_the_spelling_and_says_so() {
    // u32 by address: no DWARF type, so `<0` (decimal) compares signed, `>0x5` unsigned.
    let (code, stdout, stderr) =
        run_hwbp(&["watch", "u32", "--json", "--max-hits", "1", "--", CONDS]);
    assert_eq!(code, Some(0), "{stderr}");
    let address = hits(&json_lines(&stdout))[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let spec = format!("{address}/4:w");
    for extra in [&[][..], &["--stop"][..]] {
        let (below_zero, _, stderr) = reported(&spec, "<0", extra);
        assert_eq!(below_zero, [0xffff_ffff, 4_000_000_000], "{extra:?}");
        assert!(
            stderr.contains(&format!(
                "--if '<0': the type of {spec} is unknown (no debug info); the condition \
                 compares signed (a decimal literal) with its 4 bytes"
            )),
            "{stderr}"
        );
        let (above, _, stderr) = reported(&spec, ">0x5", extra);
        assert_eq!(above, [0xffff_ffff, 6, 4_000_000_000], "{extra:?}");
        assert!(
            stderr.contains("compares unsigned (a 0x literal)"),
            "{stderr}"
        );
    }
}
