//! Reading another process's memory: `process_vm_readv(2)`
//! (`mm/process_vm_access.c`), falling back to `/proc/PID/mem`
//! (`fs/proc/base.c`, `mem_rw`) where the syscall is unavailable or refused.
//!
//! Both need ptrace-read access to the target (`PTRACE_MODE_ATTACH_REALCREDS`);
//! neither needs the target to be stopped.

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

/// An error while reading target memory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// Nothing is mapped (readable) at the address.
    #[error("cannot read {len} bytes at {addr:#x} in process {pid}: the address is not mapped")]
    Unmapped {
        /// Process id.
        pid: i32,
        /// Start address.
        addr: u64,
        /// Bytes asked for.
        len: usize,
    },
    /// The process does not exist.
    #[error("cannot read memory of process {0}: no such process")]
    NoSuchProcess(i32),
    /// Access was refused.
    #[error("cannot read memory of process {pid}: permission denied (needs ptrace access: run as root or check /proc/sys/kernel/yama/ptrace_scope)")]
    PermissionDenied {
        /// Process id.
        pid: i32,
    },
    /// A value width other than 1, 2, 4 or 8 bytes.
    #[error("cannot read a {0}-byte value: the width must be 1, 2, 4 or 8 bytes")]
    BadWidth(usize),
    /// Any other failure.
    #[error("cannot read memory of process {pid} at {addr:#x}: {source}")]
    Io {
        /// Process id.
        pid: i32,
        /// Start address.
        addr: u64,
        /// The underlying error.
        source: io::Error,
    },
}

/// Reads up to `buf.len()` bytes at `addr` in process `pid`; returns how many
/// were read (fewer if the range runs into unmapped memory).
///
/// Fails with [`MemoryError::Unmapped`] if not even the first byte is readable.
pub fn read_memory(pid: i32, addr: u64, buf: &mut [u8]) -> Result<usize, MemoryError> {
    if buf.is_empty() {
        return Ok(0);
    }
    let len = buf.len();
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    let result = process_vm_readv(Pid::from_raw(pid), &mut [IoSliceMut::new(buf)], &remote);
    match result {
        Ok(0) => Err(MemoryError::Unmapped { pid, addr, len }),
        Ok(read) => Ok(read),
        Err(Errno::EFAULT) => Err(MemoryError::Unmapped { pid, addr, len }),
        Err(Errno::ESRCH) => Err(MemoryError::NoSuchProcess(pid)),
        // ENOSYS: kernel without CONFIG_CROSS_MEMORY_ATTACH; EPERM: e.g. a
        // seccomp filter. /proc/PID/mem may still work in both cases.
        Err(_) => read_proc_mem(pid, addr, buf),
    }
}

fn read_proc_mem(pid: i32, addr: u64, buf: &mut [u8]) -> Result<usize, MemoryError> {
    let len = buf.len();
    let file = File::open(format!("/proc/{pid}/mem")).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => MemoryError::NoSuchProcess(pid),
        io::ErrorKind::PermissionDenied => MemoryError::PermissionDenied { pid },
        _ => MemoryError::Io {
            pid,
            addr,
            source: e,
        },
    })?;
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], addr + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(MemoryError::Io {
                    pid,
                    addr,
                    source: e,
                })
            }
        }
    }
    if done == 0 {
        return Err(MemoryError::Unmapped { pid, addr, len });
    }
    Ok(done)
}

/// Reads a little-endian unsigned value of `len` bytes (1, 2, 4 or 8) at `addr`.
pub fn read_value(pid: i32, addr: u64, len: usize) -> Result<u64, MemoryError> {
    if !matches!(len, 1 | 2 | 4 | 8) {
        return Err(MemoryError::BadWidth(len));
    }
    let mut bytes = [0u8; 8];
    let read = read_memory(pid, addr, &mut bytes[..len])?;
    if read < len {
        return Err(MemoryError::Unmapped {
            pid,
            addr: addr + read as u64,
            len: len - read,
        });
    }
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        let value: u64 = 0x1122_3344_5566_7788;
        let pid = std::process::id() as i32;
        let addr = &value as *const u64 as u64;
        assert_eq!(read_value(pid, addr, 8).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(read_value(pid, addr, 4).unwrap(), 0x5566_7788);
        assert_eq!(read_value(pid, addr + 6, 2).unwrap(), 0x1122);
        assert_eq!(read_value(pid, addr, 1).unwrap(), 0x88);
        assert!(matches!(
            read_value(pid, addr, 3),
            Err(MemoryError::BadWidth(3))
        ));
    }

    #[test]
    fn unmapped_and_fallback() {
        let pid = std::process::id() as i32;
        assert!(matches!(
            read_value(pid, 8, 8),
            Err(MemoryError::Unmapped {
                addr: 8,
                len: 8,
                ..
            })
        ));
        let value: u32 = 0xdead_beef;
        let mut buf = [0u8; 4];
        let read = read_proc_mem(pid, &value as *const u32 as u64, &mut buf).unwrap();
        assert_eq!((read, u32::from_le_bytes(buf)), (4, 0xdead_beef));
        assert!(matches!(
            read_proc_mem(pid, 8, &mut buf),
            Err(MemoryError::Unmapped { .. })
        ));
    }
}
