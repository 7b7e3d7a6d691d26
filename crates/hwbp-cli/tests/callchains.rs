//! `hwbp watch -g` callchains from the unwind tables (issue 19) on the real kernel, against
//! `perf record --call-graph dwarf` + `perf script` on the same programs (differential): C built
//! `-O1 -g -fomit-frame-pointer` calling Debian's libc (with its separate debug file, and with
//! that file hidden), C++ with namespaces and an inlined function, Rust with inlined frames.
//!
//! Every test sets breakpoints (perf and BPF, ptrace in stop mode), so every name starts with
//! `exclusive_`; run as root with `perf` installed (`.ci/run` installs `linux-perf`).

use std::process::Command;

use hwbp_fixtures::{UNWIND, UNWIND_CXX, UNWIND_RS};
use serde_json::Value;

mod support;
use support::{hits, json_lines};

/// One physical frame: its address as printed, the names at it (inlined calls innermost first,
/// then the function) and the function's offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    names: Vec<String>,
    offset: Option<u64>,
}

fn require_root_and_perf() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests set breakpoints and load BPF: run them as root"
    );
    let perf = Command::new("perf").arg("--version").output();
    assert!(
        perf.is_ok_and(|o| o.status.success()),
        "perf is needed for the differential tests (Debian: linux-perf)"
    );
}

/// The address of `symbol` in a non-PIE `program` (`nm`).
fn symbol_address(program: &str, symbol: &str) -> u64 {
    let out = Command::new("nm").args(["-C", program]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(symbol))
        .unwrap_or_else(|| panic!("{symbol} in {program}"));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}

/// `name+0xOFF`: the name and the offset.
fn split_offset(text: &str) -> (String, Option<u64>) {
    match text.rsplit_once("+0x") {
        Some((name, off)) if u64::from_str_radix(off, 16).is_ok() => {
            (name.to_string(), u64::from_str_radix(off, 16).ok())
        }
        _ => (text.to_string(), None),
    }
}

/// hwbp's frames (`0xADDR inner (file:line) (inlined)`, `0xADDR name+0xOFF (file:line)`,
/// `0xADDR libc.so.6+0xOFF`) grouped by address into physical frames.
fn hwbp_frames(chain: &[Value]) -> Vec<Frame> {
    let mut frames = Vec::new();
    for text in chain {
        let text = text.as_str().unwrap();
        assert!(!text.starts_with("[unwinding stopped"), "{chain:?}");
        let (addr, rest) = text.split_once(' ').unwrap_or((text, ""));
        assert!(!rest.is_empty(), "a bare address in {chain:?}");
        let (inlined, rest) = match rest.strip_suffix(" (inlined)") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let head = rest.split(" (").next().unwrap();
        let (name, offset) = if inlined {
            (head.to_string(), None)
        } else {
            split_offset(head)
        };
        push_name(&mut frames, addr, name, offset, inlined);
    }
    frames.into_iter().map(|(_, f, _)| f).collect()
}

/// Adds one name at address `addr` to `frames`: to the last frame when it is at the same
/// address and still open (its names so far were inlined calls), else as a new frame.
fn push_name(
    frames: &mut Vec<(String, Frame, bool)>,
    addr: &str,
    name: String,
    offset: Option<u64>,
    inlined: bool,
) {
    match frames.last_mut() {
        Some((a, frame, open)) if a == addr && *open => {
            frame.names.push(name);
            frame.offset = offset;
            *open = inlined;
        }
        _ => {
            let names = vec![name];
            frames.push((addr.to_string(), Frame { names, offset }, inlined));
        }
    }
}

/// `perf record -e mem:ADDR/8:w -c 1 --call-graph dwarf -- program args` and `perf script`:
/// the user-mode hits' frames, grouped by address as `perf script` prints inlined frames.
fn perf_chains(addr: u64, program: &str, args: &[&str]) -> Vec<Vec<Frame>> {
    perf_chains_of(&format!("mem:{addr:#x}/8:w"), program, args)
}

/// [`perf_chains`] for any perf event.
fn perf_chains_of(event: &str, program: &str, args: &[&str]) -> Vec<Vec<Frame>> {
    let dir = std::env::temp_dir().join(format!("hwbp-callchains-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join(format!("{}.perf", program.rsplit('/').next().unwrap()));
    let record = Command::new("perf")
        .args([
            "record",
            "-q",
            "-c",
            "1",
            "--call-graph",
            "dwarf",
            "-e",
            event,
            "-o",
        ])
        .arg(&data)
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    assert!(record.status.success(), "{record:?}");
    let script = Command::new("perf")
        .args(["script", "-F", "ip,sym,symoff,dso", "-i"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(script.status.success(), "{script:?}");
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8(script.stdout).unwrap();
    text.split("\n\n")
        .filter(|sample| !sample.trim().is_empty() && !sample.contains("[kernel.kallsyms]"))
        .map(|sample| {
            let mut frames = Vec::new();
            for line in sample.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let (ip, rest) = line.split_once(' ').unwrap();
                let (symbol, dso) = rest.rsplit_once(" (").unwrap();
                let (name, offset) = split_offset(symbol);
                push_name(&mut frames, ip, name, offset, dso == "inlined)");
            }
            frames.into_iter().map(|(_, f, _)| f).collect()
        })
        .collect()
}

/// `hwbp watch SPEC --json -g [extra] -- program args`: each hit's callchain.
fn hwbp_chains(
    spec: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    program: &str,
    args: &[&str],
) -> Vec<Vec<Value>> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hwbp"));
    command.args(["watch", spec, "--json", "-g"]).args(extra);
    command.arg("--").arg(program).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let values = json_lines(&String::from_utf8(out.stdout).unwrap());
    hits(&values)
        .iter()
        .map(|hit| {
            hit["callchain"]
                .as_array()
                .expect("-g gives a callchain")
                .clone()
        })
        .collect()
}

/// How the leaf's names are compared with perf's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    /// The same names: the instruction after the access is in the same inlined calls.
    SameNames,
    /// Offsets only: perf names the leaf at the ip after the access, which here is in another
    /// inlined call than the access hwbp names.
    OffsetOnly,
}

/// A C++ name without its parameter list (`record(long)` -> `record`), as perf prints it.
fn without_parameters(name: &str) -> &str {
    match name.strip_suffix(')').and_then(|n| n.rfind('(')) {
        Some(open) if !name.starts_with('<') => &name[..open],
        _ => name,
    }
}

/// hwbp's chains equal perf's frame for frame: the same physical frames, the same offsets
/// (perf names the leaf at the ip after the access, hwbp at the access: one byte apart) and
/// the same names at each (inlined calls first).
fn assert_same_frames(ours: &[Vec<Value>], perf: &[Vec<Frame>], leaf: Leaf) {
    assert_eq!(ours.len(), perf.len(), "hits: hwbp {ours:?}\nperf {perf:?}");
    assert!(!ours.is_empty());
    for (chain, theirs) in ours.iter().zip(perf) {
        let mut mine = hwbp_frames(chain);
        if let Some(leaf) = mine.first_mut() {
            leaf.offset = leaf.offset.map(|o| o + 1);
        }
        let offsets = |frames: &[Frame]| frames.iter().map(|f| f.offset).collect::<Vec<_>>();
        let context = format!("hwbp {chain:?}\nperf {theirs:?}");
        assert_eq!(offsets(&mine), offsets(theirs), "{context}");
        let skip = usize::from(leaf == Leaf::OffsetOnly);
        let names = |frames: &[Frame]| {
            frames[skip..]
                .iter()
                .map(|f| {
                    f.names
                        .iter()
                        .map(|n| without_parameters(n).to_string())
                        .collect()
                })
                .collect::<Vec<Vec<String>>>()
        };
        assert_eq!(names(&mine), names(theirs), "{context}");
    }
}

/// The physical frames' function names of a chain.
fn functions(chain: &[Value]) -> Vec<String> {
    hwbp_frames(chain)
        .into_iter()
        .map(|f| f.names.last().unwrap().clone())
        .collect()
}

/// Every hit is inside snprintf: `fill`, `work`, `main` in that order, right under a named libc
/// function.
fn assert_fill_work_main(chains: &[Vec<Value>], under: &[&str]) {
    for chain in chains {
        let names = functions(chain);
        let at = names
            .iter()
            .position(|n| n == "fill")
            .unwrap_or_else(|| panic!("{chain:?}"));
        assert_eq!(names[at..at + 3], ["fill", "work", "main"], "{chain:?}");
        assert!(at >= 1, "{chain:?}");
        assert!(under.contains(&names[at - 1].as_str()), "{chain:?}");
        assert_eq!(
            names.last().map(String::as_str),
            Some("_start"),
            "{chain:?}"
        );
    }
}

#[test]
fn exclusive_c_chain_through_libc_matches_perf_with_the_debug_file() {
    require_root_and_perf();
    let addr = symbol_address(UNWIND, "buf");
    let perf = perf_chains(addr, UNWIND, &["3"]);
    let ours = hwbp_chains("buf/8", &[], &[], UNWIND, &["3"]);
    assert_same_frames(&ours, &perf, Leaf::SameNames);
    assert_fill_work_main(&ours, &["__GI___snprintf"]);
    // The libc frames are named from libc6-dbg's file: the leaf and the writers inside it.
    let leaves: Vec<String> = ours.iter().map(|c| functions(c)[0].clone()).collect();
    assert!(
        leaves.iter().all(|l| !l.contains("libc.so.6+")),
        "{leaves:?}"
    );
    assert!(
        leaves.iter().any(|l| l == "__vsnprintf_internal"),
        "{leaves:?}"
    );
}

#[test]
fn exclusive_c_chain_through_libc_without_its_debug_file_names_every_frame() {
    require_root_and_perf();
    let addr = symbol_address(UNWIND, "buf");
    let perf = perf_chains(addr, UNWIND, &["3"]);
    let hidden = [("HWBP_DEBUG_FILE_DIRECTORY", "")];
    let ours = hwbp_chains("buf/8", &[], &hidden, UNWIND, &["3"]);
    // The same frames (perf still reads the debug file, so names differ; offsets of the
    // frames libc's own symbols name do not).
    assert_eq!(ours.len(), perf.len());
    for (chain, theirs) in ours.iter().zip(&perf) {
        assert_eq!(
            hwbp_frames(chain).len(),
            theirs.len(),
            "{chain:?}\n{theirs:?}"
        );
    }
    // `snprintf` from libc's dynamic symbols; code no symbol covers as `libc.so.6+0x...`.
    assert_fill_work_main(&ours, &["snprintf"]);
    let leaves: Vec<String> = ours.iter().map(|c| functions(c)[0].clone()).collect();
    assert!(
        leaves.iter().any(|l| l.starts_with("libc.so.6")),
        "{leaves:?}"
    );
}

#[test]
fn exclusive_c_chain_is_the_same_in_stop_mode() {
    require_root_and_perf();
    let perf_mode = hwbp_chains("buf/8", &[], &[], UNWIND, &["2"]);
    let stop_mode = hwbp_chains("buf/8", &["--stop"], &[], UNWIND, &["2"]);
    assert_fill_work_main(&stop_mode, &["__GI___snprintf"]);
    let physical = |chains: &[Vec<Value>]| {
        chains
            .iter()
            .map(|c| functions(c)[1..].to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(physical(&stop_mode), physical(&perf_mode));
}

#[test]
fn exclusive_frame_pointer_chains_lose_the_callers_in_libc() {
    require_root_and_perf();
    let fp = hwbp_chains("buf/8", &["--call-graph", "fp"], &[], UNWIND, &["1"]);
    assert!(!fp.is_empty());
    for chain in &fp {
        let texts: Vec<&str> = chain.iter().map(|f| f.as_str().unwrap()).collect();
        assert!(!texts.iter().any(|t| t.contains(" work+")), "{chain:?}");
        // A walk that read a 0 return address ends with a marker, never with `0x0`.
        assert!(!texts.contains(&"0x0"), "{chain:?}");
    }
}

#[test]
fn exclusive_cxx_chain_has_the_inlined_frame_and_namespaces_as_perf() {
    require_root_and_perf();
    let addr = symbol_address(UNWIND_CXX, "shapes::g_total");
    let perf = perf_chains(addr, UNWIND_CXX, &["3"]);
    let ours = hwbp_chains("shapes::g_total", &[], &[], UNWIND_CXX, &["3"]);
    assert_same_frames(&ours, &perf, Leaf::OffsetOnly);
    for chain in &ours {
        let frames = hwbp_frames(chain);
        assert_eq!(
            frames[0].names,
            [
                "shapes::detail::store(long)",
                "shapes::detail::Recorder::record(long)"
            ],
            "{chain:?}"
        );
        assert_eq!(frames[1].names, ["main"], "{chain:?}");
    }
}

#[test]
fn exclusive_rust_chain_has_the_inlined_frames_as_perf() {
    require_root_and_perf();
    let addr = symbol_address(UNWIND_RS, "unwind_rs::ledger::TOTAL");
    let perf = perf_chains(addr, UNWIND_RS, &["3"]);
    let ours = hwbp_chains("unwind_rs::ledger::TOTAL", &[], &[], UNWIND_RS, &["3"]);
    assert_eq!(ours.len(), 3);
    assert_same_frames(&ours, &perf, Leaf::OffsetOnly);
    for chain in &ours {
        let frames = hwbp_frames(chain);
        assert_eq!(
            frames[0].names.last().unwrap(),
            "unwind_rs::ledger::post",
            "{chain:?}"
        );
        assert!(
            frames[0]
                .names
                .iter()
                .any(|n| n == "unwind_rs::ledger::add"),
            "the inlined add: {chain:?}"
        );
        assert_eq!(
            frames[1].names.last().unwrap(),
            "unwind_rs::main",
            "{chain:?}"
        );
        assert!(functions(chain)
            .iter()
            .any(|n| n.starts_with("std::rt::lang_start")));
    }
}

/// Execute breakpoints keep their perf samples beside the BPF handler: their chains come
/// from `PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER`, unwound the same way, and name the
/// same functions as perf's.
#[test]
fn exclusive_perf_sample_chain_of_an_execute_breakpoint_matches_perf() {
    require_root_and_perf();
    let addr = symbol_address(UNWIND, "fill");
    let perf = perf_chains_of(&format!("mem:{addr:#x}:x"), UNWIND, &["2"]);
    let ours = hwbp_chains("fill:x", &[], &[], UNWIND, &["2"]);
    assert_eq!(ours.len(), 2);
    let expected = [
        "fill",
        "work",
        "main",
        "__libc_start_call_main",
        "__libc_start_main_impl",
        "_start",
    ];
    for chain in &ours {
        assert_eq!(functions(chain), expected, "{chain:?}");
    }
    assert_eq!(perf.len(), 2);
    for frames in &perf {
        let names: Vec<&str> = frames
            .iter()
            .map(|f| f.names.last().unwrap().as_str())
            .collect();
        assert_eq!(names, expected, "{frames:?}");
    }
}
