//! The crate's one error type, [`SymbolError`].
//!
//! Every message names what was wrong in the user's terms (the symbol, the process, the file)
//! and, where there is one, what would work instead.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong while reading maps, ELF files or kernel symbol tables, or looking a name up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/PID` does not exist (any more): the process has exited or never existed.
    #[error("no process with pid {pid} (it has exited or never existed)")]
    NoSuchProcess {
        /// The process id asked for.
        pid: u32,
    },
    /// A line of `/proc/PID/maps` text did not have the kernel's format.
    #[error("malformed maps line {line_no}: {reason}: '{line}'")]
    MapsParse {
        /// 1-based line number.
        line_no: usize,
        /// The offending line.
        line: String,
        /// Which field was wrong.
        reason: &'static str,
    },
    /// A mapped file is not a readable 64-bit ELF file.
    #[error("{path} is not a usable ELF file: {reason}")]
    Elf {
        /// The file.
        path: PathBuf,
        /// What the ELF parser said.
        reason: String,
    },
    /// The process has no executable mapping we could read (e.g. a kernel thread).
    #[error("process {pid} has no readable executable mapping (kernel thread, or its executable was deleted)")]
    NoExecutable {
        /// The process id.
        pid: u32,
    },
    /// No module of the process defines the name.
    #[error(fmt = fmt_not_found)]
    NotFound {
        /// The name asked for.
        name: String,
        /// The process searched.
        pid: u32,
        /// Its executable.
        executable: PathBuf,
        /// How many other ELF modules (shared libraries) were searched.
        library_count: usize,
        /// Up to 3 data symbols whose names are close to `name`.
        near: Vec<String>,
    },
    /// The name is a thread-local variable: its address differs per thread.
    #[error("'{name}' in {module} is a thread-local variable; watching thread-local storage is not supported yet (watch its address in one thread instead)")]
    ThreadLocal {
        /// The name asked for.
        name: String,
        /// The module that defines it.
        module: PathBuf,
    },
    /// A kernel symbol table line did not have the `ADDRESS TYPE NAME [module]` format.
    #[error("malformed line {line_no} in {source_name}: '{line}'; expected 'ADDRESS TYPE NAME' lines as in /proc/kallsyms or a System.map")]
    KernelParse {
        /// Where the text came from (`/proc/kallsyms`, a System.map path).
        source_name: String,
        /// 1-based line number.
        line_no: usize,
        /// The offending line.
        line: String,
    },
    /// `/proc/kallsyms` printed every address as zero.
    #[error("{source_name} shows all kernel addresses as 0: kernel.kptr_restrict hides them from this user; run as root (or with CAP_SYSLOG), or set `sysctl kernel.kptr_restrict=0`")]
    KernelAddressesHidden {
        /// Where the text came from.
        source_name: String,
    },
    /// The kernel symbol table has no symbol of that name.
    #[error(fmt = fmt_kernel_not_found)]
    KernelNotFound {
        /// The name asked for.
        name: String,
        /// Where we looked (`/proc/kallsyms`, a System.map or vmlinux path).
        source_name: String,
        /// Whether the table lists (core-kernel) data symbols at all.
        lists_data_symbols: bool,
        /// Up to 3 close names.
        near: Vec<String>,
    },
}

fn fmt_did_you_mean(near: &[String], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if !near.is_empty() {
        write!(f, "; did you mean: {}?", near.join(", "))?;
    }
    Ok(())
}

fn fmt_not_found(
    name: &str,
    pid: &u32,
    executable: &Path,
    library_count: &usize,
    near: &[String],
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let plural = if *library_count == 1 {
        "library"
    } else {
        "libraries"
    };
    write!(
        f,
        "no symbol '{name}' in process {pid} ({} and {library_count} {plural})",
        executable.display()
    )?;
    fmt_did_you_mean(near, f)
}

fn fmt_kernel_not_found(
    name: &str,
    source_name: &str,
    lists_data_symbols: &bool,
    near: &[String],
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    if !*lists_data_symbols && source_name == crate::kernel::KALLSYMS_PATH {
        write!(
            f,
            "kernel symbol '{name}' not found: this kernel's {source_name} lists no data symbols \
             (built without CONFIG_KALLSYMS_ALL); pass --system-map /boot/System.map-$(uname -r) \
             or --vmlinux FILE"
        )?;
    } else {
        write!(f, "kernel symbol '{name}' not found in {source_name}")?;
    }
    fmt_did_you_mean(near, f)
}
