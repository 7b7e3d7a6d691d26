//! `bpf(2)` through libc: maps, program loading with the verifier's log, object ids, and
//! `PERF_EVENT_IOC_SET_BPF`. Every `unsafe` block of the BPF side, except the ring buffer
//! mapping (`ringbuf.rs`), is here.
//!
//! Kernel behaviour it follows:
//! - `kernel/bpf/syscall.c` (`__sys_bpf`): `attr` is copied for `min(size, sizeof(union
//!   bpf_attr))` bytes and the rest zeroed, so each command sends only the prefix of `union
//!   bpf_attr` it uses (the structs below, laid out as in `include/uapi/linux/bpf.h`). Every
//!   fd the kernel returns is `O_CLOEXEC`, and is the only reference user space holds: closing
//!   it (dropping the [`OwnedFd`]) frees the object once no program or perf event refers to it.
//!   Nothing is pinned in bpffs.
//! - `BPF_PROG_LOAD` with `log_level = 0` is tried first (no log cost); on refusal the load is
//!   repeated with `log_level = 1` and a 1 MiB buffer, which since Linux 6.4 keeps the *end* of
//!   the log when it overflows (`kernel/bpf/log.c`), where the verifier writes its error.
//! - `PERF_EVENT_IOC_SET_BPF` (`kernel/events/core.c`, `perf_event_set_bpf_handler`): only
//!   `BPF_PROG_TYPE_PERF_EVENT`, `EEXIST` if the event already has a program, `EPROTO` for
//!   `get_stack` on a `precise_ip` event without `PERF_SAMPLE_CALLCHAIN`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::BpfError;

/// `enum bpf_cmd` values used here.
mod cmd {
    pub const MAP_CREATE: libc::c_long = 0;
    pub const MAP_LOOKUP_ELEM: libc::c_long = 1;
    pub const MAP_UPDATE_ELEM: libc::c_long = 2;
    pub const MAP_DELETE_ELEM: libc::c_long = 3;
    pub const MAP_GET_NEXT_KEY: libc::c_long = 4;
    pub const PROG_LOAD: libc::c_long = 5;
    pub const PROG_GET_NEXT_ID: libc::c_long = 11;
    pub const PROG_GET_FD_BY_ID: libc::c_long = 13;
    pub const MAP_GET_FD_BY_ID: libc::c_long = 14;
    pub const OBJ_GET_INFO_BY_FD: libc::c_long = 15;
}

/// `enum bpf_map_type` values hwbp uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MapType {
    /// `BPF_MAP_TYPE_HASH`
    Hash = 1,
    /// `BPF_MAP_TYPE_ARRAY`
    Array = 2,
    /// `BPF_MAP_TYPE_PERCPU_HASH`: one value per possible CPU.
    PercpuHash = 5,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`: one value per possible CPU.
    PercpuArray = 6,
    /// `BPF_MAP_TYPE_RINGBUF` (Linux 5.8): `max_entries` is the data size in bytes.
    Ringbuf = 27,
}

impl MapType {
    /// One value per possible CPU in user-space lookups.
    pub fn is_percpu(self) -> bool {
        matches!(self, MapType::PercpuHash | MapType::PercpuArray)
    }
}

/// `BPF_PROG_TYPE_PERF_EVENT`.
pub const PROG_TYPE_PERF_EVENT: u32 = 7;

/// `BPF_ANY` / `BPF_NOEXIST` / `BPF_EXIST` for map updates.
pub const BPF_ANY: u64 = 0;
/// Create only.
pub const BPF_NOEXIST: u64 = 1;

/// The license every hwbp program is loaded with; GPL-compatible for `license_is_gpl_compatible`
/// (`include/linux/license.h`), which the GPL-only helpers (`probe_read_*`, `get_stack`,
/// ring buffer) require.
pub const LICENSE: &str = "Dual MIT/GPL";

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    // BPF_OBJ_NAME_LEN is 16 with the NUL; the kernel accepts [A-Za-z0-9_.].
    for (dst, src) in out.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    out
}

/// The raw system call: `bpf(cmd, attr, sizeof(*attr))`.
fn bpf<T>(command: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    // SAFETY: `attr` is a valid, initialised `#[repr(C)]` prefix of `union bpf_attr` borrowed
    // mutably for the call, and we pass its exact size; the kernel zero-extends the rest. Any
    // pointers inside it point at buffers the caller keeps alive across this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn fd_result(op: &'static str, ret: Result<libc::c_long, Errno>) -> Result<OwnedFd, BpfError> {
    let fd = ret.map_err(|errno| BpfError::from_errno(op, errno))?;
    let fd = i32::try_from(fd).map_err(|_| BpfError::from_errno(op, Errno::EBADF))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One key and value of a map, as bytes.
pub type MapEntry = (Vec<u8>, Vec<u8>);

/// A BPF map, freed when dropped (and no loaded program refers to it any more).
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    map_type: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    name: &'static str,
}

impl Map {
    /// `BPF_MAP_CREATE`. `name` is shown by `bpftool map` (at most 15 bytes are kept).
    pub fn create(
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        name: &'static str,
    ) -> Result<Map, BpfError> {
        let mut attr = MapCreateAttr {
            map_type: map_type as u32,
            key_size,
            value_size,
            max_entries,
            map_name: name16(name),
            ..Default::default()
        };
        let fd = fd_result("BPF_MAP_CREATE", bpf(cmd::MAP_CREATE, &mut attr))?;
        Ok(Map {
            fd,
            map_type,
            key_size,
            value_size,
            max_entries,
            name,
        })
    }

    /// The map's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Its type.
    pub fn map_type(&self) -> MapType {
        self.map_type
    }

    /// `max_entries` (bytes of data for a ring buffer).
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// The name it was created with.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Bytes of a user-space value: `value_size`, or for per-CPU maps `round_up(value_size,
    /// 8)` per possible CPU (`bpf_map_value_size` in `kernel/bpf/syscall.c`).
    pub fn user_value_size(&self) -> usize {
        if self.map_type.is_percpu() {
            (self.value_size as usize).div_ceil(8) * 8 * possible_cpus()
        } else {
            self.value_size as usize
        }
    }

    fn check(&self, key: &[u8], value_len: Option<usize>) -> Result<(), BpfError> {
        if key.len() != self.key_size as usize {
            return Err(BpfError::Invalid(format!(
                "map {}: key of {} bytes, expected {}",
                self.name,
                key.len(),
                self.key_size
            )));
        }
        if let Some(len) = value_len {
            if len != self.user_value_size() {
                return Err(BpfError::Invalid(format!(
                    "map {}: value of {len} bytes, expected {}",
                    self.name,
                    self.user_value_size()
                )));
            }
        }
        Ok(())
    }

    /// `BPF_MAP_UPDATE_ELEM` with `flags` ([`BPF_ANY`], [`BPF_NOEXIST`]).
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), BpfError> {
        self.check(key, Some(value.len()))?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
            ..Default::default()
        };
        bpf(cmd::MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|errno| BpfError::from_errno("BPF_MAP_UPDATE_ELEM", errno))
    }

    /// `BPF_MAP_LOOKUP_ELEM`: the value (all CPUs' values for per-CPU maps), or `None`.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BpfError> {
        self.check(key, None)?;
        let mut value = vec![0u8; self.user_value_size()];
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        match bpf(cmd::MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(BpfError::from_errno("BPF_MAP_LOOKUP_ELEM", errno)),
        }
    }

    /// `BPF_MAP_DELETE_ELEM`: true if the key was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, BpfError> {
        self.check(key, None)?;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            ..Default::default()
        };
        match bpf(cmd::MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(BpfError::from_errno("BPF_MAP_DELETE_ELEM", errno)),
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (the first key for `None`), or `None` at
    /// the end.
    pub fn next_key(&self, key: Option<&[u8]>) -> Result<Option<Vec<u8>>, BpfError> {
        if let Some(key) = key {
            self.check(key, None)?;
        }
        let mut next = vec![0u8; self.key_size as usize];
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key.map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..Default::default()
        };
        match bpf(cmd::MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => Ok(Some(next)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(BpfError::from_errno("BPF_MAP_GET_NEXT_KEY", errno)),
        }
    }

    /// Every key and value. Keys added or removed meanwhile may be missed (the kernel's
    /// iteration is not a snapshot), which is fine for maps only the program adds to.
    pub fn entries(&self) -> Result<Vec<MapEntry>, BpfError> {
        let mut out = Vec::new();
        let mut key = self.next_key(None)?;
        while let Some(k) = key {
            if let Some(value) = self.lookup(&k)? {
                out.push((k.clone(), value));
            }
            key = self.next_key(Some(&k))?;
        }
        Ok(out)
    }

    /// The kernel's id of this map (`bpf_map_info.id`).
    pub fn id(&self) -> Result<u32, BpfError> {
        object_id(self.fd())
    }
}

/// A loaded program, unloaded when dropped and detached from every perf event it was
/// attached to (the events hold their own reference until they are closed).
#[derive(Debug)]
pub struct Prog {
    fd: OwnedFd,
}

impl Prog {
    /// `BPF_PROG_LOAD` of a `BPF_PROG_TYPE_PERF_EVENT` program. On refusal the error carries
    /// the verifier's error line.
    pub fn load_perf_event(insns: &[u8], name: &str) -> Result<Prog, BpfError> {
        let license = std::ffi::CString::new(LICENSE).expect("no NUL in the license");
        let mut attr = ProgLoadAttr {
            prog_type: PROG_TYPE_PERF_EVENT,
            insn_cnt: (insns.len() / 8) as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name16(name),
            ..Default::default()
        };
        match bpf(cmd::PROG_LOAD, &mut attr) {
            Ok(fd) => return fd_result("BPF_PROG_LOAD", Ok(fd)).map(|fd| Prog { fd }),
            Err(Errno::EPERM) => return Err(BpfError::from_errno("BPF_PROG_LOAD", Errno::EPERM)),
            Err(_) => {}
        }
        // Refused: load again with the verifier's log to say why.
        let mut log = vec![0u8; 1 << 20];
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
        match bpf(cmd::PROG_LOAD, &mut attr) {
            Ok(fd) => fd_result("BPF_PROG_LOAD", Ok(fd)).map(|fd| Prog { fd }),
            Err(errno) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]).into_owned();
                match verifier_error_line(&text) {
                    Some(line) => Err(BpfError::Refused {
                        errno,
                        line,
                        log: text,
                    }),
                    None => Err(BpfError::from_errno("BPF_PROG_LOAD", errno)),
                }
            }
        }
    }

    /// The program's fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// The kernel's id of this program (`bpf_prog_info.id`).
    pub fn id(&self) -> Result<u32, BpfError> {
        object_id(self.fd())
    }

    /// `PERF_EVENT_IOC_SET_BPF`: run this program at every overflow of `event` (for a
    /// `sample_period = 1` breakpoint: every hit), and in every child the event is inherited to
    /// afterwards.
    pub fn attach_perf_event(&self, event: BorrowedFd<'_>) -> Result<(), BpfError> {
        // SAFETY: plain ioctl on a perf fd we borrow; the argument is the program's fd number,
        // which lives across the call (the kernel takes its own reference).
        let ret = unsafe {
            perf_event_open_sys::ioctls::SET_BPF(event.as_raw_fd(), self.fd.as_raw_fd() as u32)
        };
        if ret < 0 {
            let errno = Errno::last();
            return Err(BpfError::Attach {
                errno,
                hint: attach_hint(errno),
            });
        }
        Ok(())
    }
}

fn attach_hint(errno: Errno) -> String {
    match errno {
        Errno::EEXIST => "the event already has a BPF program".into(),
        Errno::EINVAL => "the fd is not a breakpoint/sampling perf event, or the program is \
                          not BPF_PROG_TYPE_PERF_EVENT"
            .into(),
        Errno::EPROTO => "bpf_get_stack on a precise_ip event needs PERF_SAMPLE_CALLCHAIN".into(),
        Errno::EBADF => "not a perf event fd".into(),
        Errno::EPERM | Errno::EACCES => permission_hint(),
        _ => "see perf_event_open(2), PERF_EVENT_IOC_SET_BPF".into(),
    }
}

/// The last line of the verifier log that is not its summary (`processed N insns ...`,
/// `verification time ...`, stack depth): that is where `bpf_verifier_log_write` puts the
/// reason for a refusal. Returned as one line.
pub fn verifier_error_line(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .rfind(|line| {
            !(line.starts_with("processed ")
                || line.starts_with("verification time")
                || line.starts_with("stack depth")
                || line.starts_with("-- END PROG LOAD LOG --"))
        })
        .map(str::to_string)
}

fn object_id(fd: BorrowedFd<'_>) -> Result<u32, BpfError> {
    // `bpf_prog_info` and `bpf_map_info` both start with `u32 type; u32 id;`; ask for those
    // 8 bytes only (the kernel copies `min(info_len, sizeof(info))`).
    let mut info = [0u32; 2];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(cmd::OBJ_GET_INFO_BY_FD, &mut attr)
        .map_err(|errno| BpfError::from_errno("BPF_OBJ_GET_INFO_BY_FD", errno))?;
    Ok(info[1])
}

/// Whether a program with this id still exists in the kernel (`BPF_PROG_GET_FD_BY_ID`).
pub fn prog_exists(id: u32) -> Result<bool, BpfError> {
    exists(cmd::PROG_GET_FD_BY_ID, "BPF_PROG_GET_FD_BY_ID", id)
}

/// The ids of every BPF program loaded now (`BPF_PROG_GET_NEXT_ID`, root only), ascending: to
/// check that a run left none behind.
pub fn program_ids() -> Result<Vec<u32>, BpfError> {
    let mut ids = Vec::new();
    let mut start = 0;
    loop {
        let mut attr = GetIdAttr {
            id: start,
            ..Default::default()
        };
        match bpf(cmd::PROG_GET_NEXT_ID, &mut attr) {
            Ok(_) => {
                ids.push(attr.next_id);
                start = attr.next_id;
            }
            Err(Errno::ENOENT) => return Ok(ids),
            Err(errno) => return Err(BpfError::from_errno("BPF_PROG_GET_NEXT_ID", errno)),
        }
    }
}

/// Whether a map with this id still exists in the kernel (`BPF_MAP_GET_FD_BY_ID`).
pub fn map_exists(id: u32) -> Result<bool, BpfError> {
    exists(cmd::MAP_GET_FD_BY_ID, "BPF_MAP_GET_FD_BY_ID", id)
}

fn exists(command: libc::c_long, op: &'static str, id: u32) -> Result<bool, BpfError> {
    let mut attr = GetIdAttr {
        id,
        ..Default::default()
    };
    match bpf(command, &mut attr) {
        // The fd we were handed is closed at once by dropping it.
        Ok(fd) => fd_result(op, Ok(fd)).map(|_| true),
        Err(Errno::ENOENT) => Ok(false),
        Err(errno) => Err(BpfError::from_errno(op, errno)),
    }
}

/// Waits up to `timeout_ms` for `fd` to be readable (`poll(2)`, `POLLIN`); true if it is.
/// A BPF ring buffer map polls readable when unconsumed records exist (`ringbuf_map_poll_kern`
/// in `kernel/bpf/ringbuf.c`).
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<bool, BpfError> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd entry, borrowed mutably for the call.
        let ret = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
        if ret >= 0 {
            return Ok(ret > 0 && pollfd.revents & libc::POLLIN != 0);
        }
        let errno = Errno::last();
        if errno != Errno::EINTR {
            return Err(BpfError::from_errno("poll(ring buffer)", errno));
        }
    }
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`), the number of values of a
/// per-CPU map entry.
pub fn possible_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        crate::target::possible_cpus()
            .ok()
            .and_then(|cpus| cpus.iter().max().map(|&m| m as usize + 1))
            .unwrap_or(1)
    })
}

/// What to do about `EPERM` from `bpf(2)`: what this process holds and, when that should have
/// sufficed, the security policy that refused it ([`crate::security`]).
pub fn permission_hint() -> String {
    crate::security::SecurityState::read().explain(crate::security::RefusedRequest::BpfProgram)
}
