//! Compiles the C fixture programs in `c/` with the system `gcc` into `OUT_DIR`.
//!
//! Flags: `-g -O1 -fno-omit-frame-pointer` so symbols, line tables and frame
//! pointers are there for hwbp to resolve and unwind, and `-fno-ipa-icf` so
//! gcc never folds two identical noinline functions (`bump_counter` and
//! `stray_write`) into one address.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const COMMON_FLAGS: &[&str] = &[
    "-g",
    "-O1",
    "-fno-omit-frame-pointer",
    "-fno-ipa-icf",
    "-Wall",
    "-Wextra",
    "-Werror",
];

const SOURCES: &[&str] = &[
    "fixture_io.h",
    "writer.c",
    "threads.c",
    "shlib.c",
    "hwbpfix_lib.c",
    "kread.c",
    "sequence.c",
    "churn.c",
    "many.c",
    "spin.c",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let c_dir = manifest_dir.join("c");
    for source in SOURCES {
        println!("cargo:rerun-if-changed=c/{source}");
    }
    println!("cargo:rerun-if-env-changed=CC");

    let pie = ["-pie", "-fPIE"];
    let no_pie = ["-no-pie", "-fno-pie"];
    gcc(&out_dir, &c_dir, "writer", &["writer.c"], &pie);
    gcc(&out_dir, &c_dir, "writer_nopie", &["writer.c"], &no_pie);
    gcc(
        &out_dir,
        &c_dir,
        "threads",
        &["threads.c"],
        &["-pie", "-fPIE", "-pthread"],
    );
    gcc(&out_dir, &c_dir, "kread", &["kread.c"], &pie);
    gcc(&out_dir, &c_dir, "many", &["many.c"], &pie);
    gcc(
        &out_dir,
        &c_dir,
        "churn",
        &["churn.c"],
        &["-pie", "-fPIE", "-pthread"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "sequence",
        &["sequence.c"],
        &["-pie", "-fPIE", "-pthread"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "spin",
        &["spin.c"],
        &["-pie", "-fPIE", "-pthread"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "libhwbpfix.so",
        &["hwbpfix_lib.c"],
        &["-shared", "-fPIC"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "shlib",
        &["shlib.c"],
        &[
            "-pie",
            "-fPIE",
            "-L",
            out_dir.to_str().expect("OUT_DIR is UTF-8"),
            "-lhwbpfix",
            "-Wl,-rpath,$ORIGIN",
        ],
    );
}

/// Runs `gcc COMMON_FLAGS extra -o out_dir/output sources`, panicking with gcc's
/// output if it fails (a build script reports errors by panicking).
fn gcc(out_dir: &Path, c_dir: &Path, output: &str, sources: &[&str], extra: &[&str]) {
    let compiler = env::var("CC").unwrap_or_else(|_| "gcc".to_owned());
    let mut command = Command::new(&compiler);
    command.args(COMMON_FLAGS).arg("-I").arg(c_dir);
    // Sources come before libraries so `-lhwbpfix` resolves shlib.c's references.
    command.arg("-o").arg(out_dir.join(output));
    for source in sources {
        command.arg(c_dir.join(source));
    }
    command.args(extra);
    let result = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler} to build fixture {output}: {e}"));
    if !result.status.success() {
        panic!(
            "{compiler} failed to build fixture {output} ({}):\n{}{}",
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
}
