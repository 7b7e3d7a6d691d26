//! Why the kernel refused a privileged request: the security state this process can see
//! (capabilities, `perf_event_paranoid`, `unprivileged_bpf_disabled`, kernel lockdown's mode,
//! the loaded security modules), and the one explanation built from it for an `EPERM`/`EACCES`
//! of `perf_event_open` or `bpf(2)`.
//!
//! Kernel behaviour followed:
//! - `perf_event_open` checks `perf_event_paranoid` against `CAP_PERFMON` (or the older
//!   `CAP_SYS_ADMIN`) first (`perf_allow_kernel`/`perf_allow_cpu` in
//!   `include/linux/perf_event.h`), then asks the security modules
//!   (`security_perf_event_open` in `kernel/events/core.c`): lockdown refuses
//!   `LOCKDOWN_PERF` only in its `confidentiality` mode (`security/lockdown/lockdown.c`,
//!   the reasons ordered in `include/linux/security.h`), and a BPF LSM program
//!   (`security/bpf/hooks.c`) or another module may refuse any open, root's too;
//! - lockdown's mode is `/sys/kernel/security/lockdown` (securityfs, which may not be mounted),
//!   the active modules are `/sys/kernel/security/lsm`;
//! - `bpf(BPF_PROG_LOAD)` needs `CAP_BPF` (+ `CAP_PERFMON` for tracing programs) or
//!   `CAP_SYS_ADMIN`, unless `unprivileged_bpf_disabled` is 0 (`kernel/bpf/syscall.c`), and
//!   lockdown `confidentiality` refuses BPF reads of kernel memory (`LOCKDOWN_BPF_READ_KERNEL`).
//!
//! The decision is a pure function of [`SecurityState`], so every combination is unit-tested.

use crate::probe::{CAP_BPF, CAP_PERFMON};

/// `CAP_SYS_ADMIN` (`include/uapi/linux/capability.h`).
pub const CAP_SYS_ADMIN: u32 = 21;

/// Where securityfs is mounted on every distribution.
const SECURITYFS: &str = "/sys/kernel/security";

/// Kernel lockdown as this process can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lockdown {
    /// The active mode: `none`, `integrity` or `confidentiality`.
    Mode(String),
    /// securityfs is not mounted, so the mode cannot be read.
    SecurityFsNotMounted,
    /// securityfs is mounted but has no lockdown file (the kernel has no lockdown module).
    NotBuilt,
}

/// What was refused, in the user's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedRequest {
    /// A breakpoint on a kernel address (kernel-mode accesses).
    KernelAddressWatch,
    /// A CPU-wide breakpoint on a user address.
    CpuWideWatch,
    /// A breakpoint in one thread or process.
    ThreadWatch,
    /// Loading or attaching a BPF program.
    BpfProgram,
}

/// The security state that decides a perf or BPF refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityState {
    /// The effective uid is 0.
    pub root: bool,
    /// The effective capability set (`CapEff` of `/proc/self/status`).
    pub capabilities: u64,
    /// `/proc/sys/kernel/perf_event_paranoid`.
    pub perf_event_paranoid: Option<i32>,
    /// `/proc/sys/kernel/unprivileged_bpf_disabled`.
    pub unprivileged_bpf_disabled: Option<i32>,
    /// Kernel lockdown.
    pub lockdown: Lockdown,
    /// The active security modules (`/sys/kernel/security/lsm`), when readable.
    pub security_modules: Option<Vec<String>>,
}

impl SecurityState {
    /// Reads the state of this process and kernel now.
    pub fn read() -> SecurityState {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let int = |path: &str| read(path).and_then(|s| s.trim().parse::<i32>().ok());
        let capabilities = read("/proc/self/status")
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            })
            .unwrap_or(0);
        let mounted = read("/proc/self/mounts").is_some_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(SECURITYFS))
        });
        let lockdown = match read(&format!("{SECURITYFS}/lockdown")) {
            Some(text) => Lockdown::Mode(active_lockdown_mode(&text)),
            None if mounted => Lockdown::NotBuilt,
            None => Lockdown::SecurityFsNotMounted,
        };
        let security_modules = read(&format!("{SECURITYFS}/lsm")).map(|text| {
            text.trim()
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect()
        });
        SecurityState {
            root: nix::unistd::geteuid().is_root(),
            capabilities,
            perf_event_paranoid: int("/proc/sys/kernel/perf_event_paranoid"),
            unprivileged_bpf_disabled: int("/proc/sys/kernel/unprivileged_bpf_disabled"),
            lockdown,
            security_modules,
        }
    }

    /// True when the effective set holds capability `bit`.
    pub fn has(&self, bit: u32) -> bool {
        self.capabilities & (1 << bit) != 0
    }

    /// True when the kernel's own permission checks (capabilities, sysctls) allow `request`,
    /// so a refusal can only come from a security module or lockdown.
    pub fn permits(&self, request: RefusedRequest) -> bool {
        let perfmon = self.has(CAP_PERFMON) || self.has(CAP_SYS_ADMIN);
        let paranoid = self.perf_event_paranoid.unwrap_or(i32::MAX);
        match request {
            RefusedRequest::KernelAddressWatch => perfmon || paranoid <= 1,
            RefusedRequest::CpuWideWatch => perfmon || paranoid <= 0,
            RefusedRequest::ThreadWatch => perfmon || paranoid <= 2,
            RefusedRequest::BpfProgram => {
                (self.has(CAP_BPF) && self.has(CAP_PERFMON))
                    || self.has(CAP_SYS_ADMIN)
                    || self.unprivileged_bpf_disabled == Some(0)
            }
        }
    }

    /// The policy in a few words, for a list of skipped tests: `lockdown integrity, security
    /// modules lockdown,capability,bpf`.
    pub fn policy_summary(&self) -> String {
        let lockdown = match &self.lockdown {
            Lockdown::Mode(mode) => format!("lockdown {mode}"),
            Lockdown::SecurityFsNotMounted => "lockdown unknown (securityfs not mounted)".into(),
            Lockdown::NotBuilt => "no lockdown".into(),
        };
        match &self.security_modules {
            Some(modules) => format!("{lockdown}, security modules {}", modules.join(",")),
            None => lockdown,
        }
    }

    /// One explanation of an `EPERM`/`EACCES` refusal of `request`, naming what this process
    /// can see. It never tells a process to gain a privilege it holds.
    pub fn explain(&self, request: RefusedRequest) -> String {
        if self.permits(request) {
            self.explain_policy_refusal(request)
        } else {
            self.explain_missing_privilege(request)
        }
    }

    fn who(&self) -> String {
        let mut held: Vec<&str> = [
            (CAP_PERFMON, "CAP_PERFMON"),
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            (CAP_BPF, "CAP_BPF"),
        ]
        .iter()
        .filter(|(bit, _)| self.has(*bit))
        .map(|&(_, name)| name)
        .collect();
        if held.is_empty() {
            held.push("none of CAP_PERFMON, CAP_SYS_ADMIN, CAP_BPF");
        }
        let user = if self.root { "root" } else { "this user" };
        format!("hwbp runs as {user} holding {}", held.join(", "))
    }

    fn sysctls(&self, request: RefusedRequest) -> String {
        let show = |v: Option<i32>| v.map_or_else(|| "unreadable".to_string(), |v| v.to_string());
        match request {
            RefusedRequest::BpfProgram => format!(
                "kernel.unprivileged_bpf_disabled is {}",
                show(self.unprivileged_bpf_disabled)
            ),
            _ => format!(
                "kernel.perf_event_paranoid is {}",
                show(self.perf_event_paranoid)
            ),
        }
    }

    fn explain_policy_refusal(&self, request: RefusedRequest) -> String {
        let lockdown = match &self.lockdown {
            Lockdown::Mode(mode) if mode == "confidentiality" => match request {
                RefusedRequest::BpfProgram => "kernel lockdown is 'confidentiality', which \
                                               refuses BPF programs that read kernel memory"
                    .to_string(),
                _ => "kernel lockdown is 'confidentiality', which refuses perf events that \
                      see kernel state"
                    .to_string(),
            },
            Lockdown::Mode(mode) => format!(
                "kernel lockdown is '{mode}' (it refuses perf and BPF only in \
                 'confidentiality')"
            ),
            Lockdown::SecurityFsNotMounted => format!(
                "kernel lockdown's mode is unknown: securityfs is not mounted (`mount -t \
                 securityfs securityfs {SECURITYFS}` shows it)"
            ),
            Lockdown::NotBuilt => "this kernel has no lockdown module".to_string(),
        };
        let modules = match &self.security_modules {
            Some(modules) if modules.iter().any(|m| m == "bpf") => format!(
                "security modules loaded: {} (a BPF LSM program or another module can refuse \
                 root too)",
                modules.join(",")
            ),
            Some(modules) => format!("security modules loaded: {}", modules.join(",")),
            None => "the loaded security modules are unknown (securityfs)".to_string(),
        };
        let consequence = match request {
            RefusedRequest::KernelAddressWatch => {
                "kernel-address watches are unavailable on this kernel; user-address watches \
                 still work"
            }
            RefusedRequest::CpuWideWatch => {
                "CPU-wide watches are unavailable on this kernel; watch a process (-p) or a \
                 launched command instead"
            }
            RefusedRequest::ThreadWatch => "the kernel's security policy refuses this watch",
            RefusedRequest::BpfProgram => {
                "the in-kernel hit handler is unavailable on this kernel; --stop gives exact \
                 values through ptrace"
            }
        };
        format!(
            "{} and {}, so the refusal comes from the kernel's security policy: {}; {}; {}",
            self.who(),
            self.sysctls(request),
            lockdown,
            modules,
            consequence
        )
    }

    fn explain_missing_privilege(&self, request: RefusedRequest) -> String {
        let need = match request {
            RefusedRequest::KernelAddressWatch => {
                "kernel-address watches need CAP_PERFMON or perf_event_paranoid <= 1"
            }
            RefusedRequest::CpuWideWatch => {
                "CPU-wide watches need CAP_PERFMON or perf_event_paranoid <= 0"
            }
            RefusedRequest::ThreadWatch => {
                "per-thread watches need perf_event_paranoid <= 2 or CAP_PERFMON; watching \
                 another user's process needs ptrace permission"
            }
            RefusedRequest::BpfProgram => {
                "loading BPF needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN"
            }
        };
        let fix = match request {
            RefusedRequest::BpfProgram => {
                "run hwbp as root or grant it those capabilities (setcap cap_bpf,cap_perfmon+ep)"
            }
            _ => {
                "run hwbp as root, grant it CAP_PERFMON (setcap cap_perfmon+ep), or lower the \
                 level with `sysctl kernel.perf_event_paranoid=1`"
            }
        };
        format!("{}; {}: {need}; {fix}", self.who(), self.sysctls(request))
    }
}

/// The bracketed mode of securityfs's lockdown file (`none [integrity] confidentiality`).
fn active_lockdown_mode(text: &str) -> String {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or_else(|| text.trim())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_lockdown(lockdown: Lockdown, modules: Option<&[&str]>) -> SecurityState {
        SecurityState {
            root: true,
            capabilities: 0x1ff_feff_ffff,
            perf_event_paranoid: Some(2),
            unprivileged_bpf_disabled: Some(2),
            lockdown,
            security_modules: modules.map(|m| m.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn the_bracketed_lockdown_mode_is_the_active_one() {
        assert_eq!(
            active_lockdown_mode("none [integrity] confidentiality\n"),
            "integrity"
        );
        assert_eq!(
            active_lockdown_mode("[none] integrity confidentiality"),
            "none"
        );
    }

    #[test]
    fn root_refused_a_kernel_watch_hears_the_policy_not_to_become_root() {
        let state = root_with_lockdown(
            Lockdown::Mode("integrity".into()),
            Some(&["lockdown", "capability", "landlock", "bpf"]),
        );
        let text = state.explain(RefusedRequest::KernelAddressWatch);
        assert_eq!(
            text,
            "hwbp runs as root holding CAP_PERFMON, CAP_SYS_ADMIN, CAP_BPF and \
             kernel.perf_event_paranoid is 2, so the refusal comes from the kernel's security \
             policy: kernel lockdown is 'integrity' (it refuses perf and BPF only in \
             'confidentiality'); security modules loaded: lockdown,capability,landlock,bpf (a \
             BPF LSM program or another module can refuse root too); kernel-address watches \
             are unavailable on this kernel; user-address watches still work"
        );
        for never in ["Run as root", "run hwbp as root", "setcap", "grant"] {
            assert!(!text.contains(never), "{never}: {text}");
        }
    }

    #[test]
    fn the_policy_summary_names_lockdown_and_the_modules() {
        let state = root_with_lockdown(
            Lockdown::Mode("integrity".into()),
            Some(&["lockdown", "capability", "bpf"]),
        );
        assert_eq!(
            state.policy_summary(),
            "lockdown integrity, security modules lockdown,capability,bpf"
        );
        let state = root_with_lockdown(Lockdown::SecurityFsNotMounted, None);
        assert_eq!(
            state.policy_summary(),
            "lockdown unknown (securityfs not mounted)"
        );
    }

    #[test]
    fn confidentiality_lockdown_is_named_as_the_cause() {
        let state = root_with_lockdown(Lockdown::Mode("confidentiality".into()), None);
        let perf = state.explain(RefusedRequest::CpuWideWatch);
        assert!(
            perf.contains("kernel lockdown is 'confidentiality', which refuses perf events"),
            "{perf}"
        );
        assert!(perf.contains("security modules are unknown"), "{perf}");
        assert!(perf.contains("CPU-wide watches are unavailable"), "{perf}");
        let bpf = state.explain(RefusedRequest::BpfProgram);
        assert!(
            bpf.contains("refuses BPF programs that read kernel memory")
                && bpf.contains("kernel.unprivileged_bpf_disabled is 2")
                && bpf.contains("--stop"),
            "{bpf}"
        );
    }

    #[test]
    fn an_unmounted_securityfs_says_how_to_see_the_mode() {
        let state = root_with_lockdown(Lockdown::SecurityFsNotMounted, None);
        let text = state.explain(RefusedRequest::KernelAddressWatch);
        assert!(
            text.contains("securityfs is not mounted (`mount -t securityfs securityfs /sys/kernel/security` shows it)"),
            "{text}"
        );
        let state = root_with_lockdown(Lockdown::NotBuilt, Some(&["capability"]));
        let text = state.explain(RefusedRequest::KernelAddressWatch);
        assert!(
            text.contains("no lockdown module") && text.contains("loaded: capability;"),
            "{text}"
        );
    }

    #[test]
    fn an_unprivileged_user_is_told_what_is_missing() {
        let state = SecurityState {
            root: false,
            capabilities: 0,
            perf_event_paranoid: Some(2),
            unprivileged_bpf_disabled: Some(2),
            lockdown: Lockdown::Mode("none".into()),
            security_modules: None,
        };
        let text = state.explain(RefusedRequest::KernelAddressWatch);
        assert_eq!(
            text,
            "hwbp runs as this user holding none of CAP_PERFMON, CAP_SYS_ADMIN, CAP_BPF; \
             kernel.perf_event_paranoid is 2: kernel-address watches need CAP_PERFMON or \
             perf_event_paranoid <= 1; run hwbp as root, grant it CAP_PERFMON (setcap \
             cap_perfmon+ep), or lower the level with `sysctl kernel.perf_event_paranoid=1`"
        );
        assert!(state
            .explain(RefusedRequest::BpfProgram)
            .contains("CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN"));
        // paranoid 1 lets a user watch kernel addresses: a refusal is then the policy's.
        let relaxed = SecurityState {
            perf_event_paranoid: Some(1),
            ..state.clone()
        };
        assert!(relaxed.permits(RefusedRequest::KernelAddressWatch));
        assert!(!relaxed.permits(RefusedRequest::CpuWideWatch));
        assert!(relaxed
            .explain(RefusedRequest::KernelAddressWatch)
            .contains("security policy"));
    }

    #[test]
    fn capabilities_alone_decide_for_a_non_root_holder() {
        let perfmon_only = SecurityState {
            root: false,
            capabilities: 1 << CAP_PERFMON,
            perf_event_paranoid: Some(4),
            unprivileged_bpf_disabled: Some(1),
            lockdown: Lockdown::Mode("none".into()),
            security_modules: None,
        };
        assert!(perfmon_only.permits(RefusedRequest::CpuWideWatch));
        assert!(!perfmon_only.permits(RefusedRequest::BpfProgram));
        let text = perfmon_only.explain(RefusedRequest::CpuWideWatch);
        assert!(
            text.starts_with("hwbp runs as this user holding CAP_PERFMON and"),
            "{text}"
        );
        assert!(!text.contains("setcap"), "{text}");
    }

    #[test]
    fn the_state_of_this_machine_reads() {
        let state = SecurityState::read();
        assert_eq!(state.root, nix::unistd::geteuid().is_root());
        let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap();
        assert_eq!(state.perf_event_paranoid, Some(paranoid));
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(SECURITYFS));
        assert_eq!(
            matches!(state.lockdown, Lockdown::SecurityFsNotMounted),
            !mounted
        );
    }
}
