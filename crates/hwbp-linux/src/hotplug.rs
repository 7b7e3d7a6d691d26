//! CPU hotplug: noticing CPUs that go offline or come online while a CPU-wide watch runs, and
//! taking a CPU offline and back (root only) with a guard that always brings it back.
//!
//! Kernel behaviour it follows:
//! - `/sys/devices/system/cpu/online` prints `cpu_online_mask` as a CPU list
//!   (`drivers/base/cpu.c`, `print_cpus_online`); re-reading it from offset 0 of one open file
//!   gives the current mask, so a check costs one `pread(2)`.
//! - Writing `0`/`1` to `/sys/devices/system/cpu/cpuN/online` takes CPU N down or up
//!   (`drivers/base/cpu.c`, `cpu_subsys_offline`/`online`); CPU 0 usually cannot go offline.
//! - A perf event bound to a CPU that goes offline is detached for good
//!   (`perf_event_exit_cpu_context` in `kernel/events/core.c`) but keeps its debug-register
//!   slot until closed; see [`crate::session::WatchSession::remove_cpu`] and
//!   [`crate::session::WatchSession::add_cpu`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::Error;
use crate::session::{Record, WatchSession};
use crate::target::parse_cpu_list;

/// Where the kernel lists the online CPUs.
pub const ONLINE_CPUS_PATH: &str = "/sys/devices/system/cpu/online";

fn io_error(op: &'static str, what: &str, e: &std::io::Error) -> Error {
    Error::Sys {
        op,
        what: what.to_string(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// What changed in the online-CPU mask since the previous check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuChanges {
    /// CPUs online now that were not at the previous check, ascending.
    pub came_online: Vec<u32>,
    /// CPUs offline now that were online at the previous check, ascending.
    pub went_offline: Vec<u32>,
}

impl CpuChanges {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.came_online.is_empty() && self.went_offline.is_empty()
    }

    /// The difference between two sorted CPU lists.
    pub fn between(before: &[u32], now: &[u32]) -> CpuChanges {
        CpuChanges {
            came_online: now
                .iter()
                .filter(|c| !before.contains(c))
                .copied()
                .collect(),
            went_offline: before
                .iter()
                .filter(|c| !now.contains(c))
                .copied()
                .collect(),
        }
    }
}

/// Watches `/sys/devices/system/cpu/online` through one open file.
#[derive(Debug)]
pub struct OnlineCpuMonitor {
    file: File,
    online: Vec<u32>,
    buf: Vec<u8>,
}

impl OnlineCpuMonitor {
    /// Opens the online-CPU list and remembers the current set.
    pub fn new() -> Result<OnlineCpuMonitor, Error> {
        let file =
            File::open(ONLINE_CPUS_PATH).map_err(|e| io_error("open", ONLINE_CPUS_PATH, &e))?;
        let mut monitor = OnlineCpuMonitor {
            file,
            online: Vec::new(),
            buf: vec![0; 4096],
        };
        monitor.online = monitor.read()?;
        Ok(monitor)
    }

    /// The online CPUs as of the last check.
    pub fn online(&self) -> &[u32] {
        &self.online
    }

    fn read(&mut self) -> Result<Vec<u32>, Error> {
        let n = self
            .file
            .read_at(&mut self.buf, 0)
            .map_err(|e| io_error("read", ONLINE_CPUS_PATH, &e))?;
        let text = String::from_utf8_lossy(&self.buf[..n]);
        parse_cpu_list(&text)
            .map_err(|e| Error::InvalidRequest(format!("cannot parse {ONLINE_CPUS_PATH}: {e}")))
    }

    /// Re-reads the online set and says what changed since the previous check. A CPU that
    /// went offline and came back between two checks shows no change: check more often than
    /// a hotplug cycle takes (tens of milliseconds).
    pub fn check(&mut self) -> Result<CpuChanges, Error> {
        let now = self.read()?;
        let changes = CpuChanges::between(&self.online, &now);
        self.online = now;
        Ok(changes)
    }
}

/// Which CPUs a CPU-wide session should follow through hotplug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuSelection {
    /// Every CPU, including ones that come online for the first time (`-a`).
    AllOnline,
    /// Only these CPUs, re-armed when they come back (`-C LIST`).
    Listed(Vec<u32>),
}

impl CpuSelection {
    fn wants(&self, cpu: u32) -> bool {
        match self {
            CpuSelection::AllOnline => true,
            CpuSelection::Listed(cpus) => cpus.contains(&cpu),
        }
    }
}

/// What [`SessionHotplug::follow`] did.
#[derive(Debug)]
pub enum HotplugNote {
    /// `cpu` went offline; `closed` events were closed, their hits kept in the counts.
    WentOffline {
        /// The CPU.
        cpu: u32,
        /// Events closed.
        closed: usize,
    },
    /// `cpu` is online and now watched.
    Armed {
        /// The CPU.
        cpu: u32,
    },
    /// `cpu` is online but refused the watch (e.g. its registers are taken); it is not retried.
    Refused {
        /// The CPU.
        cpu: u32,
        /// Why.
        error: Error,
    },
}

/// Keeps a CPU-wide [`WatchSession`] on every selected online CPU while it runs: closes the
/// events of CPUs that went offline and opens events on CPUs that came online.
///
/// `perf_event_open` on a CPU that is in the online mask but whose perf context is not up yet
/// fails with `ENODEV` (`perf_event_open`, `cpuctx->online`): such a CPU is retried at the next
/// call, so call [`SessionHotplug::follow`] every few milliseconds (the CLI does at every poll,
/// every 10 ms).
#[derive(Debug)]
pub struct SessionHotplug {
    monitor: OnlineCpuMonitor,
    selection: CpuSelection,
    refused: Vec<u32>,
}

impl SessionHotplug {
    /// Starts following with the current online set.
    pub fn new(selection: CpuSelection) -> Result<SessionHotplug, Error> {
        Ok(SessionHotplug {
            monitor: OnlineCpuMonitor::new()?,
            selection,
            refused: Vec::new(),
        })
    }

    /// Re-reads the online set and brings `session` in line with it. Records drained while
    /// closing a CPU's events go to `on_record`.
    pub fn follow(
        &mut self,
        session: &mut WatchSession,
        on_record: &mut dyn FnMut(Record),
    ) -> Result<Vec<HotplugNote>, Error> {
        let changes = self.monitor.check()?;
        let mut notes = Vec::new();
        for cpu in changes.went_offline {
            // A refused CPU that leaves may be tried again when it returns.
            self.refused.retain(|c| *c != cpu);
        }
        let online = self.monitor.online().to_vec();
        for cpu in session.watched_cpus() {
            if !online.contains(&cpu) {
                let closed = session.remove_cpu(cpu, on_record)?;
                notes.push(HotplugNote::WentOffline { cpu, closed });
            }
        }
        let watched = session.watched_cpus();
        for cpu in online {
            if watched.contains(&cpu) || self.refused.contains(&cpu) || !self.selection.wants(cpu) {
                continue;
            }
            match session.add_cpu(cpu) {
                Ok(()) => notes.push(HotplugNote::Armed { cpu }),
                Err(Error::Open {
                    errno: Errno::ENODEV,
                    ..
                }) => {} // perf is not up on it yet: next call.
                Err(error) => {
                    self.refused.push(cpu);
                    notes.push(HotplugNote::Refused { cpu, error });
                }
            }
        }
        Ok(notes)
    }
}

fn online_path(cpu: u32) -> String {
    format!("/sys/devices/system/cpu/cpu{cpu}/online")
}

/// Takes `cpu` offline (`online = false`) or brings it online. Needs root; CPU 0 and CPUs
/// without an `online` file cannot be taken offline.
pub fn set_cpu_online(cpu: u32, online: bool) -> Result<(), Error> {
    let path = online_path(cpu);
    std::fs::write(&path, if online { "1" } else { "0" }).map_err(|e| io_error("write", &path, &e))
}

/// Whether `cpu` is online now.
pub fn is_cpu_online(cpu: u32) -> Result<bool, Error> {
    let path = online_path(cpu);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim() == "1"),
        // CPU 0 often has no `online` file: it is always online.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cpu == 0 => Ok(true),
        Err(e) => Err(io_error("read", &path, &e)),
    }
}

/// A CPU this process took offline; dropping the guard brings it back online (retrying for up
/// to a second, since the kernel may refuse with `EBUSY` while another hotplug operation runs).
#[derive(Debug)]
pub struct OfflineCpu {
    cpu: u32,
    restored: bool,
}

impl OfflineCpu {
    /// Takes `cpu` offline. Fails, changing nothing, if it is already offline.
    pub fn take(cpu: u32) -> Result<OfflineCpu, Error> {
        if !is_cpu_online(cpu)? {
            return Err(Error::InvalidRequest(format!(
                "CPU {cpu} is already offline; bring it online first (echo 1 > {})",
                online_path(cpu)
            )));
        }
        set_cpu_online(cpu, false)?;
        Ok(OfflineCpu {
            cpu,
            restored: false,
        })
    }

    /// The CPU held offline.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// Brings the CPU back online now, reporting failure (drop only retries and ignores it).
    pub fn bring_back(mut self) -> Result<(), Error> {
        let result = self.restore();
        self.restored = result.is_ok();
        result
    }

    fn restore(&self) -> Result<(), Error> {
        let mut last = Ok(());
        for _ in 0..50 {
            last = set_cpu_online(self.cpu, true);
            if last.is_ok() || is_cpu_online(self.cpu).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last
    }
}

impl Drop for OfflineCpu {
    fn drop(&mut self) {
        if !self.restored {
            let _ = self.restore();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_the_set_difference() {
        let c = CpuChanges::between(&[0, 1, 2], &[0, 2, 3]);
        assert_eq!(c.came_online, vec![3]);
        assert_eq!(c.went_offline, vec![1]);
        assert!(!c.is_empty());
        assert!(CpuChanges::between(&[0, 1], &[0, 1]).is_empty());
    }

    #[test]
    fn a_listed_selection_follows_only_its_cpus() {
        assert!(CpuSelection::AllOnline.wants(7));
        let listed = CpuSelection::Listed(vec![0, 2]);
        assert!(listed.wants(2));
        assert!(!listed.wants(1));
    }

    #[test]
    fn monitor_reads_the_same_set_as_online_cpus() {
        let monitor = OnlineCpuMonitor::new().unwrap();
        assert_eq!(
            monitor.online(),
            crate::session::online_cpus().unwrap().as_slice()
        );
        assert!(monitor.online().contains(&0));
    }
}
