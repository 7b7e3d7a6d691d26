use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

pub const C_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/c");

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixture binaries, built once per test run.
pub struct Built {
    pub pie: PathBuf,
    pub non_pie: PathBuf,
    pub lib: PathBuf,
    pub plugin: PathBuf,
    pub rust: PathBuf,
}

pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(build_all)
}

/// Builds into a directory named after a hash of the sources. Test runners such as nextest run
/// each test in its own process, so each builds into a private directory and renames it into
/// place; the first rename wins and the others use the winner's binaries.
fn build_all() -> Built {
    let sources = ["writer.c", "lib.c", "plugin.c", "my_crate.rs"];
    let mut hasher = std::hash::DefaultHasher::new();
    for name in sources {
        std::fs::read(Path::new(C_DIR).join(name))
            .unwrap()
            .hash(&mut hasher);
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!("hwbp-symbols-fixtures-{:016x}", hasher.finish()));
    let built = Built {
        pie: dir.join("writer-pie"),
        non_pie: dir.join("writer-nopie"),
        lib: dir.join("libhwbptest.so"),
        plugin: dir.join("libhwbpplugin.so"),
        rust: dir.join("my_crate"),
    };
    if dir.exists() {
        return built;
    }
    let staging = root.join(format!("hwbp-symbols-staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    let c = |name: &str| Path::new(C_DIR).join(name);
    for (out, src) in [
        ("libhwbptest.so", "lib.c"),
        ("libhwbpplugin.so", "plugin.c"),
    ] {
        run(Command::new("gcc")
            .args(["-g", "-O2", "-shared", "-fPIC", "-o"])
            .arg(staging.join(out))
            .arg(c(src)));
    }
    for (out, pie_flags) in [
        ("writer-pie", ["-fPIE", "-pie"]),
        ("writer-nopie", ["-fno-PIE", "-no-pie"]),
    ] {
        run(Command::new("gcc")
            .args(["-g", "-O2"])
            .args(pie_flags)
            .arg("-o")
            .arg(staging.join(out))
            .arg(c("writer.c"))
            .arg(format!("-L{}", staging.display()))
            // The final directory: the binaries run only after the rename below.
            .arg(format!("-Wl,-rpath,{}", dir.display()))
            .args(["-lhwbptest", "-ldl"]));
    }
    run(Command::new("rustc")
        .args([
            "-g",
            "-O",
            "--edition",
            "2021",
            "--crate-name",
            "my_crate",
            "-o",
        ])
        .arg(staging.join("my_crate"))
        .arg(c("my_crate.rs")));
    if std::fs::rename(&staging, &dir).is_err() {
        // Another test process renamed its identical build into place first.
        assert!(dir.exists());
        let _ = std::fs::remove_dir_all(&staging);
    }
    built
}

/// A running fixture; killed and reaped on drop.
pub struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// `key=value` pairs printed so far.
    pub values: HashMap<String, String>,
}

impl Fixture {
    pub fn spawn(exe: &Path, args: &[&Path]) -> Fixture {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut fixture = Fixture {
            child,
            stdin,
            stdout,
            values: HashMap::new(),
        };
        fixture.read_until_ready();
        fixture
    }

    /// Reads `key=value` lines until the fixture prints `ready`.
    pub fn read_until_ready(&mut self) {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "fixture exited before printing 'ready'");
            let line = line.trim();
            if line == "ready" {
                return;
            }
            for pair in line.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("key=value");
                self.values.insert(k.to_string(), v.to_string());
            }
        }
    }

    /// Lets the fixture continue past its next stdin wait.
    pub fn send_line(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.value("pid") as u32
    }

    /// A printed number (`%p` hex or decimal).
    pub fn value(&self, key: &str) -> u64 {
        let v = self
            .values
            .get(key)
            .unwrap_or_else(|| panic!("fixture printed no {key}"));
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    }

    /// Kills and reaps the fixture now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// 1-based line of the `/* LINE:tag */` marker in a C fixture.
pub fn marker_line(file: &str, tag: &str) -> u32 {
    let text = std::fs::read_to_string(Path::new(C_DIR).join(file)).unwrap();
    let marker = format!("LINE:{tag} ");
    let idx = text
        .lines()
        .position(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no marker {tag} in {file}"));
    idx as u32 + 1
}

/// From `objdump -d` of `exe`: (function start, address of the last instruction in `function`
/// that stores to `variable`, address of the instruction after it), all link-time.
pub fn objdump_store(exe: &Path, function: &str, variable: &str) -> (u64, u64, u64) {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(exe)
        .output()
        .expect("objdump");
    let text = String::from_utf8(out.stdout).unwrap();
    let header = format!("<{function}>:");
    let start_line = text
        .lines()
        .position(|l| l.ends_with(&header))
        .expect("function in objdump");
    let lines: Vec<&str> = text
        .lines()
        .skip(start_line)
        .take_while(|l| !l.is_empty())
        .collect();
    let func_start = u64::from_str_radix(lines[0].split_whitespace().next().unwrap(), 16).unwrap();
    let addr_of = |l: &str| u64::from_str_radix(l.trim().split(':').next().unwrap(), 16).unwrap();
    let target = format!("<{variable}>");
    let store = (1..lines.len())
        .rev()
        .find(|&i| {
            let l = lines[i];
            // AT&T syntax: a store has the memory operand last, e.g. `mov %rax,0x2ec9(%rip)`.
            l.contains(&target)
                && l.contains("mov")
                && l.split('#').next().unwrap().trim_end().ends_with("(%rip)")
        })
        .expect("a store to the variable");
    (func_start, addr_of(lines[store]), addr_of(lines[store + 1]))
}
