//! `hwbp record` and `hwbp report` on recordings: a real run recorded with `hwbp record -g`
//! reports the same table `hwbp stat` printed
//! for the same run, its folded stacks add up to the hits, its HTML has one plot; a cut file is
//! reported up to its last complete record and flagged; a file that is not a recording exits 2
//! in one line. And the CLI conventions: completions and the man page from the clap
//! definitions.
//!
//! Per-thread breakpoints only (two on the writer fixture): may run in parallel.

use std::path::PathBuf;
use std::process::Command;

use hwbp_fixtures::{Fixture, WRITER};
use serde_json::Value;

mod support;
use support::{json_lines, run_hwbp, Running, HWBP};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hwbp-report-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// One real run watched twice at once: `hwbp stat` (text) and `hwbp record -g -o FILE`, 1000
/// writes by `bump_counter`. Returns stat's stdout, the recording and the fixture's pid.
fn recorded_run(name: &str) -> (String, PathBuf, i32) {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid();
    let pid_arg = pid.to_string();
    let path = temp(name);
    let path_arg = path.to_string_lossy().into_owned();
    let stat = Running::hwbp(&["stat", "counter", "-p", &pid_arg]);
    let record = Running::hwbp(&["record", "counter", "-p", &pid_arg, "-g", "-o", &path_arg]);
    let done = writer.command("go 1000").unwrap();
    assert_eq!(done.field("writes"), Some("1000"));
    assert!(writer.finish().unwrap().success());
    let (status, stat_out, stderr) = stat.finish();
    assert!(status.success(), "{stderr:?}");
    let (status, record_out, stderr) = record.finish();
    assert!(status.success(), "{stderr:?}");
    assert_eq!(record_out, "", "hwbp record writes only the file");
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("hwbp: recorded 1000 hits to ")),
        "{stderr:?}"
    );
    let header = json_lines(&std::fs::read_to_string(&path).unwrap())[0].clone();
    assert_eq!(header["type"], "header");
    assert_eq!(header["mode"], "perf");
    assert_eq!(header["target"]["kind"], "process");
    assert_eq!(header["target"]["pid"], pid);
    assert_eq!(header["watches"][0]["spec"], "counter");
    (stat_out, path, pid)
}

fn hwbp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(HWBP).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_recorded_run_reports_the_same_table_as_hwbp_stat_on_the_same_run() {
    let (stat_out, path, pid) = recorded_run("real.hwbp");
    let file = path.to_str().unwrap();
    let (code, report_out, stderr) = hwbp(&["report", file]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    // The first line says which command and how long; the per-watch lines must be identical.
    let stat_lines: Vec<&str> = stat_out.lines().skip(1).collect();
    let report_lines: Vec<&str> = report_out.lines().skip(1).collect();
    assert_eq!(
        report_lines, stat_lines,
        "stat:\n{stat_out}\nreport:\n{report_out}"
    );
    assert_eq!(report_lines.len(), 4, "{report_out}");
    assert!(report_lines[1].starts_with("        1000  counter (0x"));
    assert_eq!(
        report_lines[2],
        format!("        1000    thread {pid} (writer)")
    );
    assert!(
        report_lines[3].starts_with("        1000    by bump_counter (writer.c:"),
        "{report_out}"
    );

    let (code, json_out, _) = hwbp(&["report", file, "--json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(json_out.trim()).unwrap();
    assert_eq!(report["type"], "report");
    let w = &report["watchpoints"][0];
    assert_eq!(w["hits"], 1000);
    assert_eq!(w["sampled"], 1000);
    assert_eq!(w["lost"], 0);
    assert_eq!(w["threads"][format!("{pid} (writer)")], 1000);
    assert_eq!(w["functions"].as_object().unwrap().len(), 1);

    // A filter that keeps nothing, one that keeps all.
    let (_, none, _) = hwbp(&["report", file, "--json", "--tid", "1"]);
    let none: Value = serde_json::from_str(none.trim()).unwrap();
    assert_eq!(none["watchpoints"][0]["hits"], 0);
    assert_eq!(none["filter"], "--tid 1");
    let (_, all, _) = hwbp(&["report", file, "--json", "--function", "bump_counter"]);
    let all: Value = serde_json::from_str(all.trim()).unwrap();
    assert_eq!(all["watchpoints"][0]["hits"], 1000);
}

#[test]
fn folded_stacks_of_a_real_run_add_up_to_its_hits_and_end_in_the_writer() {
    let (_, path, _) = recorded_run("folded.hwbp");
    let (code, folded, stderr) = hwbp(&["report", path.to_str().unwrap(), "--folded"]);
    assert_eq!(code, 0, "{stderr}");
    let mut total = 0;
    for line in folded.lines() {
        let (stack, count) = line.rsplit_once(' ').unwrap();
        total += count.parse::<u64>().unwrap();
        // Root first, the writing function last (frames from the callchain).
        assert!(stack.ends_with(";bump_counter"), "{line}");
    }
    assert_eq!(total, 1000, "{folded}");
}

#[test]
fn the_html_of_a_real_run_has_one_plot_and_its_writer() {
    let (_, path, _) = recorded_run("html.hwbp");
    let out = temp("real.html");
    let (code, stdout, stderr) = hwbp(&[
        "report",
        path.to_str().unwrap(),
        "--html",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    let page = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        stderr,
        format!("hwbp: wrote {} ({} bytes)\n", out.display(), page.len())
    );
    assert_eq!(page.matches("<svg class=\"plot\"").count(), 1);
    assert!(page.contains("all 1,000 writes shown"));
    assert!(page.contains("bump_counter (1,000 writes"));
}

#[test]
fn a_cut_recording_is_reported_up_to_its_last_complete_record_and_flagged() {
    let (_, path, _) = recorded_run("cut.hwbp");
    let text = std::fs::read_to_string(&path).unwrap();
    // Keep the header and 600 hits, then half of the 601st line.
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = lines[..601].join("\n");
    cut.push('\n');
    cut.push_str(&lines[601][..lines[601].len() / 2]);
    let partial = lines[601].len() / 2;
    let cut_path = temp("cut-short.hwbp");
    std::fs::write(&cut_path, cut).unwrap();
    let file = cut_path.to_str().unwrap();
    let (code, stdout, stderr) = hwbp(&["report", file, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let why = format!(
        "cut after 600 hits (no summary record; a partial last line of {partial} bytes dropped)"
    );
    assert_eq!(
        stderr,
        format!("hwbp: {file} was {why}: reporting what it holds\n")
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["cut"], why);
    assert_eq!(report["watchpoints"][0]["hits"], 600);
    assert_eq!(report["watchpoints"][0]["placement"], "unknown");
}

#[test]
fn a_file_that_is_not_a_recording_exits_2_with_one_line() {
    let path = temp("watch-output.jsonl");
    std::fs::write(&path, "{\"type\":\"hit\",\"time_ns\":1}\n").unwrap();
    let file = path.to_str().unwrap();
    let (code, stdout, stderr) = run_hwbp(&["report", file]);
    assert_eq!(code, Some(2));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "hwbp: {file}: not an hwbp recording: its first line is a \"hit\" record, as `hwbp \
             watch --json` prints, not a header; hwbp report reads files written by `hwbp \
             record -o FILE` (or put a header line first: see docs/recording-format.md)\n"
        )
    );
    let (code, _, stderr) = run_hwbp(&["report", file, "--from", "2", "--to", "1"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "hwbp: --from 2 --to 1: the range is empty; --from must be before --to\n"
    );
}

const VISIBLE: [&str; 9] = [
    "watch",
    "stat",
    "demo",
    "constraints",
    "slots",
    "ksym",
    "report",
    "completions",
    "man",
];

#[test]
fn bash_completions_offer_every_subcommand_and_report_s_options() {
    let (code, script, stderr) = run_hwbp(&["completions", "bash"]);
    assert_eq!(code, Some(0), "{stderr}");
    // clap_complete's bash script lists the subcommands of `hwbp` in the `opts=` of `hwbp`.
    let opts = script
        .lines()
        .find(|l| l.trim_start().starts_with("opts=\"") && l.contains("--version"))
        .unwrap();
    for sub in VISIBLE {
        assert!(
            opts.contains(&format!(" {sub} ")),
            "{sub} missing in {opts}"
        );
    }
    // clap_complete's scripts complete hidden subcommands too (`demo-target`).
    assert_eq!(
        opts.trim(),
        "opts=\"-h -V --help --version watch record stat demo constraints slots ksym report \
         completions man demo-target help\""
    );
    assert!(script.contains("--folded"));
    assert!(script.contains("--html"));
    for shell in ["zsh", "fish"] {
        let (code, script, _) = run_hwbp(&["completions", shell]);
        assert_eq!(code, Some(0));
        assert!(script.contains("report"), "{shell}");
    }
}

#[test]
fn the_man_page_is_generated_from_the_clap_definitions_and_renders() {
    let (code, page, stderr) = run_hwbp(&["man"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(page.contains(".TH HWBP 1"), "{page}");
    for sub in VISIBLE {
        assert!(page.contains(&format!("hwbp\\-{sub}(1)")), "{sub} missing");
    }
    let (code, watch_page, _) = run_hwbp(&["man", "watch"]);
    assert_eq!(code, Some(0));
    assert!(watch_page.contains(".TH HWBP-WATCH 1"));
    // Rendered by man(1) (Debian's man-db, installed by .ci/run).
    let page_file = temp("hwbp.1");
    std::fs::write(&page_file, &page).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&page_file)
        .env("MANWIDTH", "80")
        .output()
        .unwrap_or_else(|e| panic!("cannot run man ({e}): apt-get install man-db"));
    assert!(rendered.status.success(), "{rendered:?}");
    // nroff's bold is `X\x08X`: keep the letters.
    let mut text = String::new();
    let raw = String::from_utf8_lossy(&rendered.stdout).into_owned();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
        } else {
            text.push(c);
        }
    }
    assert!(text.contains("NAME"), "{text}");
    assert!(
        text.contains("hwbp - hwbp: hardware breakpoints and watchpoints for Linux"),
        "{text}"
    );
    let (code, _, stderr) = run_hwbp(&["man", "demo-target"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("hwbp: no subcommand \"demo-target\": use one of watch, record, stat")
    );
}
