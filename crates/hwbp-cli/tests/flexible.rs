//! More watches than debug registers on the real kernel: pinned watches counted exactly,
//! flexible ones rotating on the register left over with honest estimates (hits seen, coverage,
//! scaled estimate), a 64-byte struct watched whole with each hit naming its field, and the
//! rotation plan printed by `hwbp slots SPEC... -p PID`.
//!
//! Per-thread breakpoints on our own fixtures only (run under the shared lock). The plans
//! assume the fixture's thread has its 4 debug registers free, which holds while no CPU-wide
//! breakpoint is open (those tests take the exclusive lock).

use hwbp_fixtures::{Fixture, MANY};

mod support;
use support::{assert_exited_ok, json_lines, of_type, run_hwbp, Running};

const WRITES: u64 = 100_000;
const VARIABLES: [&str; 12] = [
    "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
];
const TWELVE_PLAN: &str = "3 pinned on DR0-DR2; 9 flexible rotating on DR3 every 10 ms, \
                           each armed 1/9 of the time";

fn relative_error(value: u64, truth: u64) -> f64 {
    value.abs_diff(truth) as f64 / truth as f64
}

/// Serial (`exclusive_`): a flexible estimate assumes the target writes at an even pace while
/// pieces take turns. In the parallel pass, 300 other tests on 2 CPUs starve the fixture for
/// tens of milliseconds at a time, its writes come in bursts, and a burst that lands on one
/// piece's turn skews that piece's estimate by 25% or more (seen: v3 with 19.4% of the hits
/// in 15.3% of the time). The estimator is right; the machine was not quiet.
#[test]
fn exclusive_twelve_variables_three_pinned_exact_nine_flexible_estimated_within_15_percent() {
    let mut many = Fixture::spawn(MANY, &[]).unwrap();
    let pid = many.pid().to_string();
    let mut args = vec!["stat", "--json", "--ring-pages", "1024", "-p", &pid];
    args.extend(VARIABLES);
    let hwbp = Running::hwbp(&args);
    let notice = hwbp
        .stderr_seen()
        .iter()
        .find(|l| l.contains("flexible"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        notice,
        format!(
            "hwbp: 12 pieces for 4 free debug registers: {TWELVE_PLAN}; flexible counts are \
             estimates"
        )
    );

    // 100,000 rounds of one store to each variable, spread over 3 s (longer if the traps
    // slow the writer down); hwbp ends when the fixture exits.
    let done = many.command(&format!("go {WRITES} 3000")).unwrap();
    assert_eq!(done.number("writes").unwrap(), WRITES);
    assert_exited_ok(many.finish().unwrap(), "many");
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");

    let values = json_lines(&stdout);
    let report = of_type(&values, "stat")[0];
    let watchpoints = report["watchpoints"].as_array().unwrap();
    assert_eq!(watchpoints.len(), 12);
    for w in &watchpoints[..3] {
        assert_eq!(w["placement"], "pinned", "{w}");
        assert_eq!(w["hits"], WRITES, "{w}");
        assert!(w.get("estimate").is_none() && w.get("coverage").is_none());
    }
    for w in &watchpoints[3..] {
        assert_eq!(w["placement"], "flexible", "{w}");
        let seen = w["hits_seen"].as_u64().unwrap();
        let coverage = w["coverage"].as_f64().unwrap();
        let estimate = w["estimate"].as_u64().unwrap();
        eprintln!(
            "{}: seen {seen}, coverage {coverage:.4}, estimate {estimate}",
            w["watch"]
        );
        assert_eq!(w["hits"], seen, "{w}");
        assert!(coverage > 0.0 && coverage <= 1.0, "{w}");
        assert!((coverage - 1.0 / 9.0).abs() < 0.03, "{w}");
        assert!(relative_error(estimate, WRITES) < 0.15, "{w}");
        // The estimate is the hits seen scaled by 1/coverage.
        assert!(relative_error(estimate, (seen as f64 / coverage) as u64) < 0.001);
    }
}

/// The JSON hits of `stdout` grouped by their `field`.
fn hits_by_field(stdout: &str) -> std::collections::BTreeMap<String, u64> {
    let mut fields = std::collections::BTreeMap::new();
    for hit in of_type(&json_lines(stdout), "hit") {
        let field = hit["field"].as_str().unwrap_or("<none>").to_string();
        *fields.entry(field).or_default() += 1;
    }
    fields
}

#[test]
fn a_64_byte_struct_watched_whole_names_the_fields_written() {
    const FIELD_WRITES: u64 = 3000;
    let mut many = Fixture::spawn(MANY, &[]).unwrap();
    assert_eq!(many.ready().number("cfg_size").unwrap(), 64);
    let cfg = many.ready().number("cfg").unwrap();
    let pid = many.pid().to_string();
    let hwbp = Running::hwbp(&["watch", "cfg", "--json", "--ring-pages", "1024", "-p", &pid]);
    // The DWARF leaves make 15 pieces (id, name[0..8] one byte each, six longs in limits):
    // 3 pinned, 12 flexible on the last register.
    assert!(
        hwbp.stderr_seen().iter().any(|l| l
            == "hwbp: 15 pieces for 4 free debug registers: 3 pinned on DR0-DR2; 12 flexible \
                rotating on DR3 every 10 ms, each armed 1/12 of the time; flexible counts are \
                estimates"),
        "{:?}",
        hwbp.stderr_seen()
    );
    // cfg.id, cfg.limits[2].max and cfg.name[5] in turn, 3000 times each over 1.5 s.
    many.command(&format!("fields {FIELD_WRITES} 1500"))
        .unwrap();
    assert_exited_ok(many.finish().unwrap(), "many");
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");

    let fields = hits_by_field(&stdout);
    eprintln!("hits by field: {fields:?}");
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, ["cfg.id", "cfg.limits[2].max", "cfg.name[5]"]);
    // cfg.id is pinned: every store seen.
    assert_eq!(fields["cfg.id"], FIELD_WRITES);
    // The other two are seen about 1/12 of the time.
    for name in ["cfg.limits[2].max", "cfg.name[5]"] {
        let seen = fields[name];
        assert!(
            seen > FIELD_WRITES / 24 && seen < FIELD_WRITES / 6,
            "{name}: {seen}"
        );
    }
    let values = json_lines(&stdout);
    let hits = of_type(&values, "hit");
    assert!(hits.iter().all(|h| h["address"] == format!("{cfg:#x}")));
    let w = &of_type(&values, "summary")[0]["watchpoints"][0];
    assert_eq!(w["placement"], "mixed", "{w}");
    assert_eq!(w["len"], 64);
    let estimate = w["estimate"].as_u64().unwrap();
    assert!(relative_error(estimate, 3 * FIELD_WRITES) < 0.15, "{w}");
    let coverage = w["coverage"].as_f64().unwrap();
    assert!((coverage - 1.0 / 12.0).abs() < 0.02, "{w}");
    assert_eq!(
        w["hits_seen"],
        fields["cfg.limits[2].max"] + fields["cfg.name[5]"]
    );
}

/// `hwbp slots` trial-opens breakpoints on every CPU to read the kernel's answer, which for a
/// moment takes a register from every thread: it runs in the serial `exclusive_` pass.
#[test]
fn exclusive_slots_with_specs_prints_the_rotation_plan() {
    let many = Fixture::spawn(MANY, &[]).unwrap();
    let pid = many.pid().to_string();
    let mut args = vec!["slots", "-p", &pid];
    args.extend(VARIABLES);
    let (code, stdout, stderr) = run_hwbp(&args);
    assert_eq!(code, Some(0), "{stderr}");
    let plan_line = format!("rotation plan for {}: {TWELVE_PLAN}", VARIABLES.join(" "));
    assert!(stdout.lines().any(|l| l == plan_line), "{stdout}");
    let piece_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  DR")).collect();
    assert_eq!(piece_lines.len(), 12, "{stdout}");
    assert!(
        piece_lines[0].starts_with("  DR0      pinned    v0 (0x"),
        "{stdout}"
    );
    assert!(
        piece_lines[11].starts_with("  DR3      flexible  v11 (0x"),
        "{stdout}"
    );

    // --flexible: all four registers rotate.
    let mut args = vec!["slots", "--flexible", "-p", &pid];
    args.extend(VARIABLES);
    let (code, stdout, _) = run_hwbp(&args);
    assert_eq!(code, Some(0));
    assert!(
        stdout
            .contains(": 12 flexible rotating on DR0-DR3 every 10 ms, each armed 1/3 of the time"),
        "{stdout}"
    );

    // A struct: one line per piece, named by field.
    let (code, stdout, _) = run_hwbp(&["slots", "cfg", "-p", &pid]);
    assert_eq!(code, Some(0));
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("flexible  cfg cfg.limits[2].max (0x")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("  DR2      pinned    cfg cfg.name[1] (0x")),
        "{stdout}"
    );
    drop(many);
}

#[test]
fn text_output_names_the_field_and_the_flexible_summary() {
    let mut many = Fixture::spawn(MANY, &[]).unwrap();
    let pid = many.pid().to_string();
    let hwbp = Running::hwbp(&["watch", "cfg", "v0", "v1", "v2", "-p", &pid]);
    many.command("fields 10 0").unwrap();
    assert_exited_ok(many.finish().unwrap(), "many");
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    // 18 pieces: cfg.id, cfg.name[0] and cfg.name[1] are pinned, the rest (v0..v2 too)
    // rotate; cfg.id's 10 stores are all seen.
    let id_lines = stdout
        .lines()
        .filter(|l| l.contains(" w cfg field cfg.id by main"))
        .count();
    assert_eq!(id_lines, 10, "{stdout}");
    assert!(
        stdout.contains("mixed: "),
        "the summary shows the flexible part: {stdout}"
    );
}
