//! `hwbp report --html` in a real browser: a 101,000-hit recording renders to a small page
//! that headless Chromium (Debian's `chromium`) loads with no console error, with one
//! `<svg class="plot">` per watch after its scripts ran, the sampling said on the page, points
//! in their writer's colour, and a tooltip on hover.

use std::path::{Path, PathBuf};
use std::process::Command;

use hwbp::record::html::render;
use hwbp::record::report::Filter;
use hwbp::record::{Header, Recording, RecordingWriter, Target, WatchInfo};
use serde_json::json;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hwbp-html-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn watch(id: u32, spec: &str, address: &str, len: u64) -> WatchInfo {
    WatchInfo {
        id,
        spec: spec.into(),
        address: address.into(),
        len,
        access: "w".into(),
        members: vec![],
        extra: Default::default(),
    }
}

/// `counter`: 100,000 writes 10 us apart; every 25th (4,000) by `bump` adds 1, the others
/// store the same value again from one of 11 functions `refresh0`..`refresh10`. `cfg`: 1,000
/// writes alternating `cfg.a` / `cfg.b`, no values.
fn big_recording(path: &Path) -> Recording {
    let header = Header::new(
        vec![
            "hwbp".into(),
            "record".into(),
            "counter".into(),
            "cfg".into(),
        ],
        Target {
            kind: "command".into(),
            pid: Some(4242),
            command: vec!["./prog".into()],
            ..Target::default()
        },
        vec![
            watch(0, "counter", "0x1000", 8),
            watch(1, "cfg", "0x2000", 16),
        ],
    );
    let mut w = RecordingWriter::create(path, &header).unwrap();
    let mut value = 1000u64;
    for i in 0..100_000u64 {
        let change = i % 25 == 0;
        let before = value;
        if change {
            value += 1;
        }
        let function = if change {
            "bump".to_string()
        } else {
            format!("refresh{}", i % 11)
        };
        w.write_hit(
            &json!({"type": "hit", "time_ns": i * 10_000, "cpu": 1, "pid": 4242,
            "tid": 4242 + (i % 3) as i32, "comm": "prog", "watch": "counter",
            "address": "0x1000", "access": "w", "kernel": false, "ip": "0x5007",
            "instruction": "0x5000", "function": function, "offset": 0, "file": "prog.c",
            "line": if change { 10 } else { 20 }, "value_before": before, "value_after": value}),
        )
        .unwrap();
    }
    for i in 0..1000u64 {
        let field = if i % 2 == 0 { "cfg.a" } else { "cfg.b" };
        w.write_hit(
            &json!({"type": "hit", "time_ns": i * 1_000_000, "cpu": 0, "pid": 4242,
            "tid": 4242, "comm": "prog", "watch": "cfg", "address": "0x2000", "field": field,
            "access": "w", "kernel": false, "ip": "0x6007", "instruction": "0x6000",
            "function": "configure", "offset": 0, "file": "prog.c", "line": 30,
            "value_before": null, "value_after": null}),
        )
        .unwrap();
    }
    w.write_summary(&json!({"type": "summary", "watchpoints": [
        {"watch": "counter", "address": "0x1000", "len": 8, "hits": 100_000,
         "reported": 100_000, "lost": 0, "placement": "pinned"},
        {"watch": "cfg", "address": "0x2000", "len": 16, "hits": 1000, "reported": 1000,
         "lost": 0, "placement": "pinned"}],
        "lost_records": 0, "throttled": 0, "duration_s": 1.0,
        "ended_by": "the command exited with status 0"}))
        .unwrap();
    w.finish().unwrap();
    Recording::read(path).unwrap()
}

/// Runs headless Chromium on `page`; returns the DOM after its scripts ran, and its stderr.
fn chromium_dump_dom(page: &Path) -> (String, String) {
    let profile = temp_dir().join("chromium-profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}): this test needs headless Chromium; install it with \
                 `apt-get install chromium` (.ci/run does)"
            )
        });
    assert!(out.status.success(), "chromium failed: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text of the element `<pre id="ID">` in a dumped DOM, unescaped.
fn pre_text(dom: &str, id: &str) -> String {
    let open = format!("<pre id=\"{id}\">");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in the DOM: the probe did not run"))
        + open.len();
    let end = start + dom[start..].find("</pre>").unwrap();
    dom[start..end]
        .replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&amp;", "&")
}

/// Records errors from the start (before the page's own script).
const PROBE_HEAD: &str = "<script>window.__errors=[];window.addEventListener('error',function(e)\
{window.__errors.push(String(e.message));});var __ce=console.error;console.error=function()\
{window.__errors.push(Array.prototype.join.call(arguments,' '));__ce.apply(console,arguments);};\
</script>";

/// After load: hovers the first point of the first plot and writes what happened into the DOM.
const PROBE_TAIL: &str = "<script>window.addEventListener('load',function(){\
var c=document.querySelector('svg.plot circle');\
c.dispatchEvent(new MouseEvent('mouseover',{bubbles:true,clientX:50,clientY:50}));\
var tip=document.getElementById('tip');\
function pre(id,t){var p=document.createElement('pre');p.id=id;p.textContent=t;document.body.appendChild(p);}\
pre('probe-errors',window.__errors.join('|'));pre('probe-tip',tip.textContent);\
pre('probe-tip-display',tip.style.display);pre('probe-fill',getComputedStyle(c).fill);});</script>";

#[test]
fn the_html_of_100000_writes_loads_in_chromium_with_one_plot_per_watch_and_no_error() {
    let dir = temp_dir();
    let rec = big_recording(&dir.join("big.hwbp"));
    let html = render(&rec, &Filter::default());

    // Small for 101,000 hits: 5,000 points per watch at most.
    assert!(html.len() < 1_500_000, "the page is {} bytes", html.len());
    assert_eq!(html.matches("<svg class=\"plot\"").count(), 2);
    assert_eq!(html.matches("<circle ").count(), 5000 + 1000);
    assert!(html
        .contains("showing 5,000 of 100,000 writes: every change kept (4,000), repeats sampled"));
    assert!(html.contains(
        "all 1,000 writes shown; no values recorded: each write is drawn on its field&#39;s row"
    ));
    // The writer that changed the value gets the first colour; 3 of the 12 writers share grey.
    assert!(html.contains(
        "<span class=\"sw\" style=\"background:#1f77b4\"></span>bump (4,000 writes, 4,000 changes)"
    ));
    assert!(
        html.contains("3 other writers (26,181 writes)"),
        "legend of writers"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );

    let page = dir.join("report.html");
    let probed = html
        .replacen("<style>", &format!("{PROBE_HEAD}<style>"), 1)
        .replacen("</body>", &format!("{PROBE_TAIL}</body>"), 1);
    std::fs::write(&page, probed).unwrap();
    let (dom, stderr) = chromium_dump_dom(&page);

    assert_eq!(pre_text(&dom, "probe-errors"), "", "errors in the page");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert_eq!(dom.matches("<svg class=\"plot\"").count(), 2);
    assert!(dom.contains("data-ready=\"2\""), "the page's script ran");
    assert_eq!(pre_text(&dom, "probe-tip-display"), "block");
    // The first point is bump's, in the first colour of the palette (#1f77b4).
    assert_eq!(pre_text(&dom, "probe-fill"), "rgb(31, 119, 180)");
    assert_eq!(
        pre_text(&dom, "probe-tip"),
        "0.000000 s  counter\nthread 4242 (prog)\nby bump\nat prog.c:10\n1000 -> 1001  \
         [read-after]"
    );
}
