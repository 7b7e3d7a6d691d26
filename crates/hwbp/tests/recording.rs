//! The recording format: written by `RecordingWriter`, read back by `RecordingReader` exactly;
//! cut files read up to their last complete line and flagged; files that are not recordings
//! (or are of a newer major version) refused with one line saying what they are; and the
//! reports of a synthetic recording, value by value.

use std::path::PathBuf;

use hwbp::record::report::{changes, folded, frame_name, report, Filter};
use hwbp::record::{
    Cut, Header, Member, RecordedTotals, Recording, RecordingReader, RecordingWriter, Summary,
    Target, ThreadName, WatchInfo, FORMAT_VERSION,
};
use serde_json::{json, Value};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hwbp-recording-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn header() -> Header {
    let mut h = Header::new(
        vec![
            "hwbp".into(),
            "record".into(),
            "counter".into(),
            "cfg".into(),
        ],
        Target {
            kind: "process".into(),
            pid: Some(100),
            ..Target::default()
        },
        vec![
            WatchInfo {
                id: 0,
                spec: "counter".into(),
                address: "0x1000".into(),
                len: 8,
                access: "w".into(),
                members: vec![],
                extra: Default::default(),
            },
            WatchInfo {
                id: 1,
                spec: "cfg".into(),
                address: "0x2000".into(),
                len: 16,
                access: "w".into(),
                members: vec![
                    Member {
                        name: "cfg.a".into(),
                        offset: 0,
                        len: 8,
                    },
                    Member {
                        name: "cfg.b".into(),
                        offset: 8,
                        len: 8,
                    },
                ],
                extra: Default::default(),
            },
        ],
    );
    h.started_unix_ns = 1_700_000_000_000_000_000;
    h.mode = Some("perf".into());
    h
}

#[allow(clippy::too_many_arguments)]
fn hit(
    ms: u64,
    tid: i32,
    comm: &str,
    watch: &str,
    function: &str,
    line: u32,
    values: Option<(u64, u64)>,
    callchain: &[&str],
) -> Value {
    let mut v = json!({
        "type": "hit", "time_ns": ms * 1_000_000, "cpu": 0, "pid": 100, "tid": tid,
        "comm": comm, "watch": watch, "address": "0x1000", "access": "w", "kernel": false,
        "ip": "0x5007", "instruction": "0x5000", "function": function, "offset": 0,
        "file": "prog.c", "line": line,
        "value_after": values.map(|v| v.1), "value_before": values.map(|v| v.0),
    });
    if !callchain.is_empty() {
        v["callchain"] = json!(callchain);
    }
    v
}

/// counter: 3 writes by bump (tid 101, 2 of them changes) and 1 by stray (tid 102);
/// cfg: 2 writes to cfg.a and 1 to cfg.b by init (tid 101), no values.
fn synthetic_hits() -> Vec<Value> {
    let chain_bump = [
        "0x5007 bump+0x7 (prog.c:10)",
        "0x6000 worker+0x20 (prog.c:30)",
        "0x7f0000001000",
    ];
    let mut hits = vec![
        hit(
            100,
            101,
            "worker",
            "counter",
            "bump",
            10,
            Some((0, 1)),
            &chain_bump,
        ),
        hit(
            200,
            101,
            "worker",
            "counter",
            "bump",
            10,
            Some((1, 2)),
            &chain_bump,
        ),
        hit(
            300,
            101,
            "worker",
            "counter",
            "bump",
            10,
            Some((2, 2)),
            &chain_bump,
        ),
        hit(
            1500,
            102,
            "evil",
            "counter",
            "stray",
            20,
            Some((2, 1002)),
            &[],
        ),
    ];
    for (ms, field) in [(400, "cfg.a"), (500, "cfg.b"), (600, "cfg.a")] {
        let mut h = hit(ms, 101, "worker", "cfg", "init", 40, None, &[]);
        h["field"] = json!(field);
        h["address"] = json!("0x2000");
        hits.push(h);
    }
    hits.sort_by_key(|h| h["time_ns"].as_u64());
    hits
}

fn summary() -> Value {
    json!({"type": "summary", "watchpoints": [
        {"watch": "counter", "address": "0x1000", "len": 8, "hits": 4, "reported": 4, "lost": 0,
         "placement": "pinned"},
        {"watch": "cfg", "address": "0x2000", "len": 16, "hits": 3, "reported": 3, "lost": 0,
         "placement": "pinned"}],
        "lost_records": 0, "throttled": 0, "duration_s": 2.0,
        "ended_by": "the command exited with status 0",
        "command": {"pid": 4242, "fate": "exited", "status": "exited with status 0"}})
}

fn write_synthetic(path: &PathBuf, with_summary: bool) {
    let mut w = RecordingWriter::create(path, &header()).unwrap();
    for h in synthetic_hits() {
        w.write_hit(&h).unwrap();
    }
    w.write_thread(&ThreadName {
        tid: 102,
        pid: Some(100),
        name: "evil".into(),
    })
    .unwrap();
    if with_summary {
        w.write_summary(&summary()).unwrap();
    }
    let stats = w.finish().unwrap();
    assert_eq!(stats.hits, 7);
    assert_eq!(stats.summary, with_summary);
    assert_eq!(stats.bytes, std::fs::metadata(path).unwrap().len());
}

#[test]
fn a_recording_reads_back_exactly_what_was_written() {
    let path = temp("roundtrip.hwbp");
    write_synthetic(&path, true);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 7 + 1 + 1);
    assert!(lines[0].starts_with(
        "{\"type\":\"header\",\"command_line\":[\"hwbp\",\"record\",\"counter\",\"cfg\"],"
    ));
    assert!(lines[0].contains("\"format\":\"hwbp-recording\""));
    assert!(lines[0].contains(&format!("\"version\":{FORMAT_VERSION}")));
    assert!(lines[1].starts_with("{\"type\":\"hit\","));
    assert_eq!(
        lines[8],
        "{\"type\":\"thread\",\"name\":\"evil\",\"pid\":100,\"tid\":102}"
    );
    assert!(lines[9].starts_with("{\"type\":\"summary\","));

    let rec = Recording::read(&path).unwrap();
    assert_eq!(rec.header, header());
    assert_eq!(rec.hits.len(), 7);
    assert_eq!(rec.cut, None);
    assert_eq!(rec.skipped, 0);
    assert_eq!(rec.thread_name(102), Some("evil"));
    assert_eq!(rec.thread_name(101), Some("worker"));
    let written = synthetic_hits();
    for (read, written) in rec.hits.iter().zip(&written) {
        let mut back = serde_json::to_value(read).unwrap();
        back["type"] = json!("hit");
        // `callchain` is left out when empty, as `hwbp watch --json` does.
        let mut written = written.clone();
        if written.get("callchain").is_none() {
            assert!(back.get("callchain").is_none());
        }
        written.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        back.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        assert_eq!(back, written);
    }
    assert_eq!(
        rec.summary,
        Some(Summary {
            watchpoints: vec![
                RecordedTotals {
                    watch: "counter".into(),
                    address: "0x1000".into(),
                    len: 8,
                    hits: 4,
                    reported: 4,
                    lost: 0,
                    placement: "pinned".into(),
                    hits_seen: None,
                    coverage: None,
                    estimate: None,
                    extra: Default::default(),
                },
                RecordedTotals {
                    watch: "cfg".into(),
                    address: "0x2000".into(),
                    len: 16,
                    hits: 3,
                    reported: 3,
                    lost: 0,
                    placement: "pinned".into(),
                    hits_seen: None,
                    coverage: None,
                    estimate: None,
                    extra: Default::default(),
                },
            ],
            lost_records: 0,
            throttled: 0,
            duration_s: 2.0,
            ended_by: "the command exited with status 0".into(),
            command: Some(hwbp::CommandFate {
                pid: 4242,
                fate: hwbp::Fate::Exited,
                status: Some("exited with status 0".into()),
                signal_sent: None,
            }),
            extra: Default::default(),
        })
    );
}

#[test]
fn unknown_fields_and_record_types_are_kept_or_skipped_not_refused() {
    let path = temp("newer-minor.hwbp");
    let mut w = RecordingWriter::create(&path, &header()).unwrap();
    let mut h = synthetic_hits()[0].clone();
    h["value_source"] = json!("read-after");
    h["exact"] = json!(false);
    h["new_in_1_1"] = json!({"x": 1});
    w.write_hit(&h).unwrap();
    w.finish().unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"type\":\"marker\",\"time_ns\":5}\n");
    std::fs::write(&path, text).unwrap();

    let rec = Recording::read(&path).unwrap();
    assert_eq!(rec.skipped, 1);
    assert_eq!(rec.hits[0].value_source.as_deref(), Some("read-after"));
    assert_eq!(rec.hits[0].exact, Some(false));
    assert_eq!(rec.hits[0].extra["new_in_1_1"], json!({"x": 1}));
    assert_eq!(
        rec.cut.as_ref().map(ToString::to_string).as_deref(),
        Some("cut after 1 hits (no summary record)")
    );
}

#[test]
fn a_file_cut_mid_line_reads_up_to_its_last_complete_record_and_says_it_was_cut() {
    let path = temp("cut.hwbp");
    write_synthetic(&path, false);
    let text = std::fs::read_to_string(&path).unwrap();
    // Cut in the middle of the 6th hit (line 7): 5 hits complete, 40 bytes of the 6th left.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let cut_at = line_starts[6] + 40;
    std::fs::write(&path, &text.as_bytes()[..cut_at]).unwrap();

    let mut reader = RecordingReader::open(&path).unwrap();
    assert_eq!(reader.header().watches.len(), 2);
    let records: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len(), 5);
    let cut = reader.cut().unwrap();
    assert_eq!(
        cut,
        Cut {
            hits: 5,
            summary: false,
            partial_bytes: 40
        }
    );
    assert_eq!(
        cut.to_string(),
        "cut after 5 hits (no summary record; a partial last line of 40 bytes dropped)"
    );

    let rec = Recording::read(&path).unwrap();
    let rep = report(&rec, &Filter::default());
    let mut out = Vec::new();
    rep.write_text(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "hwbp report: 0.500s (cut after 5 hits (no summary record; a partial last line of 40 \
         bytes dropped))\n\
         hwbp report: counts are of the recorded hits\n\
         \n\
         \x20          3  counter (0x1000, 8 bytes)\n\
         \x20          3    thread 101 (worker)\n\
         \x20          3    by bump (prog.c:10)\n\
         \n\
         \x20          2  cfg (0x2000, 16 bytes)\n\
         \x20          1    field cfg.a\n\
         \x20          1    field cfg.b\n\
         \x20          2    thread 101 (worker)\n\
         \x20          2    by init (prog.c:40)\n"
    );
}

#[test]
fn a_writer_dropped_without_finish_leaves_whole_lines_and_no_summary() {
    let path = temp("dropped.hwbp");
    {
        let mut w = RecordingWriter::create(&path, &header()).unwrap();
        for h in synthetic_hits().iter().take(3) {
            w.write_hit(h).unwrap();
        }
    }
    let rec = Recording::read(&path).unwrap();
    assert_eq!(rec.hits.len(), 3);
    assert_eq!(
        rec.cut,
        Some(Cut {
            hits: 3,
            summary: false,
            partial_bytes: 0
        })
    );
}

#[test]
fn the_writer_refuses_a_record_of_the_wrong_type() {
    let path = temp("wrong-type.hwbp");
    let mut w = RecordingWriter::create(&path, &header()).unwrap();
    let err = w.write_hit(&summary()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot write a hit: its type is \"summary\", not \"hit\""
    );
    let err = w.write_hit(&json!([1, 2])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot write a hit: it is not a JSON object: [1,2]"
    );
    assert_eq!(w.hits_written(), 0);
}

fn open_err(name: &str, contents: &[u8]) -> String {
    let path = temp(name);
    std::fs::write(&path, contents).unwrap();
    let err = RecordingReader::open(&path).unwrap_err().to_string();
    err.replace(&path.display().to_string(), "FILE")
}

#[test]
fn files_that_are_not_recordings_are_refused_with_what_they_are() {
    const HOW: &str = "hwbp report reads files written by `hwbp record -o FILE`";
    assert_eq!(
        open_err("empty", b""),
        format!("FILE: not an hwbp recording: the file is empty; {HOW}")
    );
    assert_eq!(
        open_err("perf.data", b"PERFILE2\x68\x00\x00\x00\x00\x00\x00\x00"),
        format!(
            "FILE: not an hwbp recording: it is a perf.data file (read it with perf report); {HOW}"
        )
    );
    let watch_json = format!("{}\n", synthetic_hits()[0]);
    assert_eq!(
        open_err("watch.jsonl", watch_json.as_bytes()),
        format!(
            "FILE: not an hwbp recording: its first line is a \"hit\" record, as `hwbp watch \
             --json` prints, not a header; {HOW} (or put a header line first: see \
             docs/recording-format.md)"
        )
    );
    assert_eq!(
        open_err("stat.json", b"{\"type\":\"stat\",\"watchpoints\":[]}\n"),
        format!("FILE: not an hwbp recording: it is `hwbp stat --json` output; {HOW}")
    );
    assert_eq!(
        open_err("text.txt", b"hello world\n"),
        format!("FILE: not an hwbp recording: its first line is not JSON; {HOW}")
    );
    assert_eq!(
        open_err(
            "other.json",
            b"{\"type\":\"header\",\"format\":\"something-else\"}\n"
        ),
        format!(
            "FILE: not an hwbp recording: its header's format is \"something-else\", not \
             \"hwbp-recording\"; {HOW}"
        )
    );
}

#[test]
fn a_newer_major_version_is_refused_with_a_clear_message() {
    let mut h = serde_json::to_value(header()).unwrap();
    h["type"] = json!("header");
    h["version"] = json!(2);
    h["hwbp_version"] = json!("9.0.0");
    assert_eq!(
        open_err("v2.hwbp", format!("{h}\n").as_bytes()),
        format!(
            "FILE: recording format version 2 is newer than this hwbp {} reads (version 1): \
             read it with the hwbp that wrote it (9.0.0) or a newer one",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn the_report_of_a_synthetic_recording_has_stat_s_tables_with_exact_counts() {
    let path = temp("report.hwbp");
    write_synthetic(&path, true);
    let rec = Recording::read(&path).unwrap();
    let rep = report(&rec, &Filter::default());
    let mut out = Vec::new();
    rep.write_text(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "hwbp report: 2.000s (the command exited with status 0)\n\
         \n\
         \x20          4  counter (0x1000, 8 bytes)\n\
         \x20          3    thread 101 (worker)\n\
         \x20          1    thread 102 (evil)\n\
         \x20          3    by bump (prog.c:10)\n\
         \x20          1    by stray (prog.c:20)\n\
         \n\
         \x20          3  cfg (0x2000, 16 bytes)\n\
         \x20          2    field cfg.a\n\
         \x20          1    field cfg.b\n\
         \x20          3    thread 101 (worker)\n\
         \x20          3    by init (prog.c:40)\n"
    );
    let json = serde_json::to_value(&rep).unwrap();
    assert_eq!(json["watchpoints"][0]["changes"], 3);
    assert_eq!(json["watchpoints"][0]["functions"]["bump (prog.c:10)"], 3);
    assert_eq!(
        json["watchpoints"][1]["members"],
        json!({"cfg.a": 2, "cfg.b": 1})
    );
    assert!(json.get("cut").is_none());

    // Filters: one thread, a time range, a function, a watch by id.
    let only = |filter: Filter| -> Vec<u64> {
        report(&rec, &filter)
            .watchpoints
            .iter()
            .map(|w| w.hits)
            .collect()
    };
    let tid = Filter {
        tid: Some(102),
        ..Filter::default()
    };
    assert_eq!(only(tid.clone()), vec![1, 0]);
    assert_eq!(report(&rec, &tid).filter.as_deref(), Some("--tid 102"));
    let range = Filter {
        from_s: Some(0.15),
        to_s: Some(0.45),
        ..Filter::default()
    };
    assert_eq!(only(range), vec![2, 1]);
    let function = Filter {
        function: Some("prog.c:20".into()),
        ..Filter::default()
    };
    assert_eq!(only(function), vec![1, 0]);
    let watch = Filter {
        watches: vec!["1".into()],
        ..Filter::default()
    };
    assert_eq!(only(watch), vec![0, 3]);
}

#[test]
fn changes_list_every_write_that_changed_the_value_with_its_writer() {
    let path = temp("changes.hwbp");
    write_synthetic(&path, true);
    let rec = Recording::read(&path).unwrap();
    let mut out = Vec::new();
    for c in changes(&rec, &Filter::default()) {
        c.write_text(&mut out).unwrap();
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "    0.100000  counter  0 -> 1  thread 101 (worker)  by bump (prog.c:10)  [read-after]\n\
         \x20   0.200000  counter  1 -> 2  thread 101 (worker)  by bump (prog.c:10)  [read-after]\n\
         \x20   1.500000  counter  2 -> 1002  thread 102 (evil)  by stray (prog.c:20)  \
         [read-after]\n"
    );
}

#[test]
fn folded_stacks_are_root_first_and_add_up_to_the_hit_count() {
    let path = temp("folded.hwbp");
    write_synthetic(&path, true);
    let rec = Recording::read(&path).unwrap();
    let stacks = folded(&rec, &Filter::default());
    assert_eq!(
        stacks,
        vec![
            ("[unknown];worker;bump".to_string(), 3),
            ("init".to_string(), 3),
            ("stray".to_string(), 1),
        ]
    );
    assert_eq!(stacks.iter().map(|s| s.1).sum::<u64>(), 7);
    assert_eq!(frame_name("0x10 <a as b>::f+0x1f (x.rs:3)"), "<a as b>::f");
    assert_eq!(frame_name("0x10 weird;name"), "weird:name");
    assert_eq!(frame_name("0x7f0000001000"), "[unknown]");
}
