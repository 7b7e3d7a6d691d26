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
    "typed.c",
    "typed_b.c",
    "chain.c",
    "late.c",
    "loader.c",
    "tree_count.c",
    "conds.c",
    "forever.c",
    "aggregates.c",
    "strings.c",
    "chain_pair.c",
    "unwind.c",
    "../cxx/unwind.cpp",
    "../rust/unwind.rs",
    "locals.c",
    "../cxx/scoped.cpp",
    "../rust/statics.rs",
    "../cxx/locals.cpp",
    "../rust/locals.rs",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let c_dir = manifest_dir.join("c");
    for source in SOURCES {
        println!("cargo:rerun-if-changed=c/{source}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-env-changed=CXX");

    let pie = ["-pie", "-fPIE"];
    let no_pie = ["-no-pie", "-fno-pie"];
    gcc(&out_dir, &c_dir, "writer", &["writer.c"], &pie);
    gcc(&out_dir, &c_dir, "conds", &["conds.c"], &no_pie);
    // -O0 (after COMMON_FLAGS' -O1, so it wins): at -O1 gcc keeps these locals in registers.
    gcc(
        &out_dir,
        &c_dir,
        "locals",
        &["locals.c"],
        &["-O0", "-pie", "-fPIE", "-pthread"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "locals_o2",
        &["locals.c"],
        &["-O2", "-pie", "-fPIE", "-pthread"],
    );
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
    gcc(&out_dir, &c_dir, "typed", &["typed.c", "typed_b.c"], &pie);
    gcc(
        &out_dir,
        &c_dir,
        "typed_nopie",
        &["typed.c", "typed_b.c"],
        &no_pie,
    );
    gcc(
        &out_dir,
        &c_dir,
        "chain",
        &["chain.c"],
        &["-no-pie", "-fno-pie", "-pthread"],
    );
    // As distributions build: no frame pointers (the later flag wins over COMMON_FLAGS').
    gcc(
        &out_dir,
        &c_dir,
        "aggregates",
        &["aggregates.c"],
        &["-pie", "-fPIE", "-fomit-frame-pointer"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "aggregates_nopie",
        &["aggregates.c"],
        &["-no-pie", "-fno-pie", "-fomit-frame-pointer"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "strings",
        &["strings.c"],
        &["-no-pie", "-fno-pie", "-fomit-frame-pointer"],
    );
    gcc(
        &out_dir,
        &c_dir,
        "chain_pair",
        &["chain_pair.c"],
        &["-no-pie", "-fno-pie", "-fomit-frame-pointer"],
    );
    // Callchain fixtures without frame pointers, as distributions build.
    let no_fp = ["-no-pie", "-fno-pie", "-fomit-frame-pointer"];
    gcc(&out_dir, &c_dir, "unwind", &["unwind.c"], &no_fp);
    let mut unwind_cxx = Command::new(env::var("CXX").unwrap_or_else(|_| "g++".to_owned()));
    unwind_cxx
        .args(COMMON_FLAGS)
        .args(no_fp)
        .arg("-o")
        .arg(out_dir.join("unwind_cxx"))
        .arg(manifest_dir.join("cxx/unwind.cpp"));
    run(unwind_cxx, "g++", "unwind_cxx");
    let mut unwind_rs = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()));
    unwind_rs
        .args(["-g", "-C", "opt-level=1", "-C", "force-frame-pointers=no"])
        .args(["-C", "relocation-model=static"])
        .args(["--edition", "2021", "--crate-name", "unwind_rs", "-o"])
        .arg(out_dir.join("unwind_rs"))
        .arg(manifest_dir.join("rust/unwind.rs"));
    run(unwind_rs, "rustc", "unwind_rs");
    gxx(
        &out_dir,
        &manifest_dir.join("cxx"),
        "scoped",
        "scoped.cpp",
        &[],
    );
    gxx(
        &out_dir,
        &manifest_dir.join("cxx"),
        "cxx_locals",
        "locals.cpp",
        &["-O0"],
    );
    rustc(
        &out_dir,
        &manifest_dir.join("rust"),
        "rust_statics",
        "statics.rs",
        "1",
    );
    rustc(
        &out_dir,
        &manifest_dir.join("rust"),
        "rust_locals",
        "locals.rs",
        "0",
    );
    gcc(
        &out_dir,
        &c_dir,
        "spin",
        &["spin.c"],
        &["-pie", "-fPIE", "-pthread"],
    );
    gcc(&out_dir, &c_dir, "forever", &["forever.c"], &pie);
    gcc(
        &out_dir,
        &c_dir,
        "liblate.so",
        &["late.c"],
        &["-shared", "-fPIC"],
    );
    gcc(&out_dir, &c_dir, "loader", &["loader.c"], &pie);
    gcc(&out_dir, &c_dir, "tree_count", &["tree_count.c"], &pie);
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

/// Runs `g++ COMMON_FLAGS -no-pie -fno-pie extra -o out_dir/output source` (fixed addresses, so
/// the file's initialized data is what the program starts with; `-O0` in `extra` wins over
/// COMMON_FLAGS' `-O1`).
fn gxx(out_dir: &Path, dir: &Path, output: &str, source: &str, extra: &[&str]) {
    let compiler = env::var("CXX").unwrap_or_else(|_| "g++".to_owned());
    let mut command = Command::new(&compiler);
    command
        .args(COMMON_FLAGS)
        .args(["-no-pie", "-fno-pie"])
        .args(extra)
        .arg("-o")
        .arg(out_dir.join(output))
        .arg(dir.join(source));
    run(command, &compiler, output);
}

/// Runs cargo's `rustc -g -C opt-level=LEVEL --crate-name output -o out_dir/output source`: a
/// plain binary (no Cargo dependencies) with full DWARF, its statics in namespaces
/// `output::module::NAME`.
fn rustc(out_dir: &Path, dir: &Path, output: &str, source: &str, opt_level: &str) {
    let compiler = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let mut command = Command::new(&compiler);
    command
        .args([
            "-g",
            "-C",
            &format!("opt-level={opt_level}"),
            "--edition",
            "2021",
            "--crate-name",
            output,
        ])
        .arg("-o")
        .arg(out_dir.join(output))
        .arg(dir.join(source));
    run(command, &compiler, output);
}

fn run(mut command: Command, compiler: &str, output: &str) {
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
