//! What a watch is attached to, and the facts about it read from `/proc` and `/sys`.
//!
//! A perf breakpoint is opened either on one thread (`pid = tid, cpu = -1`) or
//! on one CPU for every task (`pid = -1, cpu = n`), see `perf_event_open(2)`.
//! A whole process is therefore its list of threads from `/proc/PID/task`, and
//! "all CPUs" is the online list from `/sys/devices/system/cpu/online`, in the
//! kernel's range-list format (`lib/bitmap-str.c`, `bitmap_parselist`):
//! `0-3,5,7-8`.

use std::fs;
use std::io;
use std::path::Path;

/// The set of threads or CPUs a watch observes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    /// One thread, by thread id.
    Thread(i32),
    /// Every thread of a process (and, with inheritance, threads it creates).
    Process(i32),
    /// Everything that runs on these CPUs, any process, user and kernel.
    Cpus(Vec<u32>),
    /// Everything that runs on any online CPU.
    AllCpus,
}

/// An error while identifying a target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// `/proc/PID` does not exist.
    #[error("no such process {0}")]
    NoSuchProcess(i32),
    /// `/proc/PID/task/TID` does not exist.
    #[error("no such thread {tid} in process {pid}")]
    NoSuchThread {
        /// Process id.
        pid: i32,
        /// Thread id.
        tid: i32,
    },
    /// A process or thread id that cannot name a task.
    #[error("invalid process or thread id {0}: ids are positive")]
    InvalidId(i32),
    /// A CPU list that does not parse.
    #[error("invalid CPU list {text:?}: {reason}; expected comma-separated CPU numbers or ranges such as 0,2-3")]
    InvalidCpuList {
        /// What was given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A requested CPU that is not online.
    #[error("CPU {cpu} is not online (online CPUs: {online})")]
    CpuNotOnline {
        /// The CPU asked for.
        cpu: u32,
        /// The online list, in range-list form.
        online: String,
    },
    /// Reading a `/proc` or `/sys` file failed for another reason.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_error(path: &Path, source: io::Error) -> TargetError {
    TargetError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn check_id(id: i32) -> Result<(), TargetError> {
    if id <= 0 {
        return Err(TargetError::InvalidId(id));
    }
    Ok(())
}

/// Whether process `pid` exists (`/proc/PID` is present).
pub fn process_exists(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).is_dir()
}

/// Whether `tid` is a thread of process `pid` (`/proc/PID/task/TID` is present).
pub fn thread_exists(pid: i32, tid: i32) -> bool {
    pid > 0 && tid > 0 && Path::new(&format!("/proc/{pid}/task/{tid}")).is_dir()
}

/// The thread ids of process `pid`, ascending, from `/proc/PID/task`.
///
/// This is a snapshot: threads may start or exit right after it is taken.
pub fn threads_of(pid: i32) -> Result<Vec<i32>, TargetError> {
    check_id(pid)?;
    let dir = format!("/proc/{pid}/task");
    let entries = fs::read_dir(&dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => TargetError::NoSuchProcess(pid),
        _ => io_error(Path::new(&dir), e),
    })?;
    let mut tids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(Path::new(&dir), e))?;
        if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    if tids.is_empty() {
        // A zombie whose threads are all reaped has an empty task directory.
        return Err(TargetError::NoSuchProcess(pid));
    }
    tids.sort_unstable();
    Ok(tids)
}

/// The thread-group id (process id) of thread `tid`, from `/proc/TID/status`.
pub fn process_of_thread(tid: i32) -> Result<i32, TargetError> {
    check_id(tid)?;
    let path = format!("/proc/{tid}/status");
    let status = fs::read_to_string(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => TargetError::NoSuchProcess(tid),
        _ => io_error(Path::new(&path), e),
    })?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|tgid| tgid.trim().parse().ok())
        .ok_or_else(|| {
            io_error(
                Path::new(&path),
                io::Error::new(io::ErrorKind::InvalidData, "no Tgid line"),
            )
        })
}

/// The command name of process `pid` (`/proc/PID/comm`, at most 15 bytes).
pub fn process_comm(pid: i32) -> Result<String, TargetError> {
    check_id(pid)?;
    let path = format!("/proc/{pid}/comm");
    read_comm(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => TargetError::NoSuchProcess(pid),
        _ => io_error(Path::new(&path), e),
    })
}

/// The name of thread `tid` of process `pid` (`/proc/PID/task/TID/comm`).
pub fn thread_comm(pid: i32, tid: i32) -> Result<String, TargetError> {
    check_id(pid)?;
    check_id(tid)?;
    let path = format!("/proc/{pid}/task/{tid}/comm");
    read_comm(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound if process_exists(pid) => TargetError::NoSuchThread { pid, tid },
        io::ErrorKind::NotFound => TargetError::NoSuchProcess(pid),
        _ => io_error(Path::new(&path), e),
    })
}

fn read_comm(path: &str) -> io::Result<String> {
    let mut comm = fs::read_to_string(path)?;
    if comm.ends_with('\n') {
        comm.pop();
    }
    Ok(comm)
}

/// The online CPUs, ascending, from `/sys/devices/system/cpu/online`.
pub fn online_cpus() -> Result<Vec<u32>, TargetError> {
    read_cpu_list_file(Path::new("/sys/devices/system/cpu/online"))
}

/// The CPUs that could ever come online, from `/sys/devices/system/cpu/possible`.
pub fn possible_cpus() -> Result<Vec<u32>, TargetError> {
    read_cpu_list_file(Path::new("/sys/devices/system/cpu/possible"))
}

fn read_cpu_list_file(path: &Path) -> Result<Vec<u32>, TargetError> {
    let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    parse_cpu_list(&text)
}

/// Checks that every CPU in `cpus` is online, for a `-C` list given by the user.
pub fn require_online(cpus: &[u32]) -> Result<(), TargetError> {
    let online = online_cpus()?;
    match cpus.iter().find(|cpu| online.binary_search(cpu).is_err()) {
        Some(&cpu) => Err(TargetError::CpuNotOnline {
            cpu,
            online: format_cpu_list(&online),
        }),
        None => Ok(()),
    }
}

/// Parses the kernel's CPU range-list format (`0-3,5`; a trailing newline and
/// an empty list are accepted) into ascending CPU numbers without duplicates.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, TargetError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    parse_ranges(trimmed, text)
}

/// Parses the user's `-C`/`--cpu` syntax: like [`parse_cpu_list`] but an empty
/// list is an error, and spaces around items are allowed (`0, 2-3`).
pub fn parse_cpu_arg(text: &str) -> Result<Vec<u32>, TargetError> {
    if text.trim().is_empty() {
        return Err(invalid_cpu_list(text, "it is empty".to_owned()));
    }
    parse_ranges(text, text)
}

fn parse_ranges(list: &str, original: &str) -> Result<Vec<u32>, TargetError> {
    let mut cpus = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(invalid_cpu_list(
                original,
                "it has an empty item".to_owned(),
            ));
        }
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (parse_cpu(a, original)?, parse_cpu(b, original)?),
            None => {
                let cpu = parse_cpu(item, original)?;
                (cpu, cpu)
            }
        };
        if first > last {
            return Err(invalid_cpu_list(
                original,
                format!("range {item} runs backwards"),
            ));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn parse_cpu(text: &str, original: &str) -> Result<u32, TargetError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_cpu_list(
            original,
            format!("{text:?} is not a CPU number"),
        ));
    }
    text.parse()
        .map_err(|_| invalid_cpu_list(original, format!("CPU number {text} is too large")))
}

fn invalid_cpu_list(text: &str, reason: String) -> TargetError {
    TargetError::InvalidCpuList {
        text: text.trim_end().to_owned(),
        reason,
    }
}

/// Formats ascending, duplicate-free CPU numbers in range-list form (`0-3,5`).
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut out = String::new();
    let mut index = 0;
    while index < cpus.len() {
        let start = cpus[index];
        let mut end = start;
        while index + 1 < cpus.len() && cpus[index + 1] == end + 1 {
            index += 1;
            end += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,5\n").unwrap(), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_cpu_list("0\n").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("\n").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("7-8,0-1").unwrap(), vec![0, 1, 7, 8]);
    }

    #[test]
    fn user_cpu_arguments() {
        assert_eq!(parse_cpu_arg("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_cpu_arg("1, 1,0").unwrap(), vec![0, 1]);
        let cases = [
            ("", "invalid CPU list \"\": it is empty"),
            ("0,,1", "invalid CPU list \"0,,1\": it has an empty item"),
            ("3-1", "invalid CPU list \"3-1\": range 3-1 runs backwards"),
            ("x", "invalid CPU list \"x\": \"x\" is not a CPU number"),
            ("-1", "invalid CPU list \"-1\": \"\" is not a CPU number"),
            ("1-", "invalid CPU list \"1-\": \"\" is not a CPU number"),
            (
                "99999999999",
                "invalid CPU list \"99999999999\": CPU number 99999999999 is too large",
            ),
        ];
        for (input, message) in cases {
            let error = parse_cpu_arg(input).unwrap_err().to_string();
            assert!(error.starts_with(message), "{input:?}: {error}");
            assert!(error.ends_with("such as 0,2-3"), "{error}");
        }
    }

    #[test]
    fn formats_ranges() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(format_cpu_list(&[4]), "4");
        assert_eq!(format_cpu_list(&[]), "");
    }
}
