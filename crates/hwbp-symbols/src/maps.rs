//! `/proc/PID/maps`: a pure parser for the kernel's text format plus [`ProcessMaps::read`].
//!
//! The line format is the one `show_map_vma()` in `fs/proc/task_mmu.c` prints:
//! `start-end perms offset major:minor inode` padded with spaces, then the path (which may
//! contain spaces; ` (deleted)` is appended when the file was unlinked) or a pseudo name such as
//! `[heap]`, `[stack]`, `[vdso]`, `[anon:NAME]`.

use std::path::Path;

use crate::SymbolError;

/// The `rwxp` column of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    /// `r`: readable.
    pub read: bool,
    /// `w`: writable.
    pub write: bool,
    /// `x`: executable.
    pub execute: bool,
    /// `s` instead of `p`: shared rather than private (copy-on-write).
    pub shared: bool,
}

/// The `major:minor` device column (hexadecimal in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Device {
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address of the mapping.
    pub end: u64,
    /// Access rights.
    pub perms: Permissions,
    /// Offset into the mapped file (0 for anonymous mappings).
    pub offset: u64,
    /// Device holding the file.
    pub dev: Device,
    /// Inode of the file (0 for anonymous and pseudo mappings).
    pub inode: u64,
    /// The path or pseudo name (`[heap]`), without the ` (deleted)` marker; `None` for an
    /// anonymous mapping.
    pub path: Option<String>,
    /// The kernel marked the file ` (deleted)`: it was unlinked (or replaced) after mapping.
    pub deleted: bool,
}

impl MapEntry {
    /// Whether `addr` lies inside `[start, end)`.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The file behind the mapping, or `None` for anonymous and `[pseudo]` mappings.
    pub fn file_path(&self) -> Option<&Path> {
        match &self.path {
            Some(p) if self.inode != 0 && !is_pseudo_name(p) => Some(Path::new(p)),
            _ => None,
        }
    }

    /// Parses one line. Errors carry `line_no` for the message.
    pub fn parse(line: &str, line_no: usize) -> Result<MapEntry, SymbolError> {
        let bad = |reason| SymbolError::MapsParse {
            line_no,
            line: line.to_string(),
            reason,
        };
        let mut rest = line;
        let mut field = |what| -> Result<&str, SymbolError> {
            let trimmed = rest.trim_start_matches(' ');
            let end = trimmed.find(' ').unwrap_or(trimmed.len());
            if end == 0 {
                return Err(bad(what));
            }
            let (f, r) = trimmed.split_at(end);
            rest = r;
            Ok(f)
        };
        let range = field("missing address range")?;
        let perms = field("missing permissions")?;
        let offset = field("missing offset")?;
        let dev = field("missing device")?;
        let inode = field("missing inode")?;

        let (start, end) = range
            .split_once('-')
            .ok_or(bad("address range without '-'"))?;
        let start = u64::from_str_radix(start, 16).map_err(|_| bad("bad start address"))?;
        let end = u64::from_str_radix(end, 16).map_err(|_| bad("bad end address"))?;
        if end < start {
            return Err(bad("end address below start address"));
        }
        let p = perms.as_bytes();
        if p.len() != 4 {
            return Err(bad("permissions are not 4 characters"));
        }
        let flag = |i: usize, set: u8| -> Result<bool, SymbolError> {
            match p[i] {
                c if c == set => Ok(true),
                b'-' => Ok(false),
                _ => Err(bad("unknown permission character")),
            }
        };
        let perms = Permissions {
            read: flag(0, b'r')?,
            write: flag(1, b'w')?,
            execute: flag(2, b'x')?,
            shared: match p[3] {
                b's' => true,
                b'p' => false,
                _ => return Err(bad("sharing flag is neither 'p' nor 's'")),
            },
        };
        let offset = u64::from_str_radix(offset, 16).map_err(|_| bad("bad offset"))?;
        let (major, minor) = dev.split_once(':').ok_or(bad("device without ':'"))?;
        let dev = Device {
            major: u32::from_str_radix(major, 16).map_err(|_| bad("bad device major"))?,
            minor: u32::from_str_radix(minor, 16).map_err(|_| bad("bad device minor"))?,
        };
        let inode = inode.parse::<u64>().map_err(|_| bad("bad inode"))?;

        // The path is the rest of the line after the padding; it may itself contain spaces.
        let path = rest.trim_start_matches(' ');
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        Ok(MapEntry {
            start,
            end,
            perms,
            offset,
            dev,
            inode,
            path: (!path.is_empty()).then(|| path.to_string()),
            deleted,
        })
    }
}

fn is_pseudo_name(path: &str) -> bool {
    path.starts_with('[') && path.ends_with(']')
}

/// All mappings of one process, in the kernel's (ascending address) order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessMaps {
    /// The mappings, ascending by `start`.
    pub entries: Vec<MapEntry>,
}

impl ProcessMaps {
    /// Parses the whole text of a maps file.
    pub fn parse(text: &str) -> Result<ProcessMaps, SymbolError> {
        let entries = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| MapEntry::parse(l, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProcessMaps { entries })
    }

    /// Reads and parses `/proc/PID/maps`.
    pub fn read(pid: u32) -> Result<ProcessMaps, SymbolError> {
        let path = format!("/proc/{pid}/maps");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SymbolError::NoSuchProcess { pid })
            }
            Err(source) => Err(SymbolError::Io {
                path: path.into(),
                source,
            }),
        }
    }

    /// The mapping that contains `addr`.
    pub fn find(&self, addr: u64) -> Option<&MapEntry> {
        let i = self.entries.partition_point(|e| e.end <= addr);
        self.entries.get(i).filter(|e| e.contains(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55d0c5a4e000-55d0c5a4f000 r--p 00000000 fe:01 1048602                    /usr/bin/my prog
55d0c5a4f000-55d0c5a50000 r-xp 00001000 fe:01 1048602                    /usr/bin/my prog
55d0c6b1c000-55d0c6b3d000 rw-p 00000000 00:00 0                          [heap]
7f1e2a400000-7f1e2a428000 r--p 00000000 08:12 3935                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2a5f0000-7f1e2a5f4000 rw-s 00000000 00:05 1234                       /tmp/libold.so (deleted)
7f1e2a600000-7f1e2a602000 rw-p 00000000 00:00 0 
7ffd6b7e7000-7ffd6b808000 rw-p 00000000 00:00 0                          [stack]
7ffd6b8f2000-7ffd6b8f4000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn parses_file_heap_vdso_deleted_anonymous_and_spaces() {
        let maps = ProcessMaps::parse(SAMPLE).unwrap();
        assert_eq!(maps.entries.len(), 9);

        let exe = &maps.entries[1];
        assert_eq!(exe.start, 0x55d0c5a4f000);
        assert_eq!(exe.end, 0x55d0c5a50000);
        assert_eq!(
            exe.perms,
            Permissions {
                read: true,
                write: false,
                execute: true,
                shared: false
            }
        );
        assert_eq!(exe.offset, 0x1000);
        assert_eq!(
            exe.dev,
            Device {
                major: 0xfe,
                minor: 1
            }
        );
        assert_eq!(exe.inode, 1048602);
        assert_eq!(exe.path.as_deref(), Some("/usr/bin/my prog"));
        assert_eq!(exe.file_path(), Some(Path::new("/usr/bin/my prog")));
        assert!(!exe.deleted);

        let heap = &maps.entries[2];
        assert_eq!(heap.path.as_deref(), Some("[heap]"));
        assert_eq!(heap.file_path(), None);
        assert_eq!(heap.inode, 0);

        let libc = &maps.entries[3];
        assert_eq!(
            libc.dev,
            Device {
                major: 8,
                minor: 0x12
            }
        );

        let deleted = &maps.entries[4];
        assert_eq!(deleted.path.as_deref(), Some("/tmp/libold.so"));
        assert!(deleted.deleted);
        assert!(deleted.perms.shared && deleted.perms.write);

        let anon = &maps.entries[5];
        assert_eq!(anon.path, None);
        assert_eq!(anon.file_path(), None);

        let vdso = &maps.entries[7];
        assert_eq!(vdso.path.as_deref(), Some("[vdso]"));
        assert!(vdso.perms.execute && vdso.perms.read && !vdso.perms.write);

        let vsyscall = &maps.entries[8];
        assert_eq!(vsyscall.start, 0xffffffffff600000);
        assert_eq!(
            vsyscall.perms,
            Permissions {
                execute: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn find_uses_half_open_ranges() {
        let maps = ProcessMaps::parse(SAMPLE).unwrap();
        assert_eq!(maps.find(0x55d0c5a4f000).unwrap().offset, 0x1000);
        assert_eq!(maps.find(0x55d0c5a4efff).unwrap().offset, 0);
        assert_eq!(maps.find(0x55d0c5a50000), None);
        assert_eq!(
            maps.find(0x7ffd6b8f3fff).unwrap().path.as_deref(),
            Some("[vdso]")
        );
        assert_eq!(maps.find(0), None);
    }

    #[test]
    fn rejects_malformed_lines_with_line_number() {
        let err = ProcessMaps::parse(
            "00400000-00401000 r-xp 00000000 08:01 1 /a\nzz-00401000 r-xp 0 08:01 1\n",
        )
        .unwrap_err();
        match err {
            SymbolError::MapsParse {
                line_no, reason, ..
            } => {
                assert_eq!(line_no, 2);
                assert_eq!(reason, "bad start address");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = MapEntry::parse("00400000-00401000 rwzp 00000000 08:01 1", 7).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed maps line 7: unknown permission character: '00400000-00401000 rwzp 00000000 08:01 1'"
        );
        assert!(MapEntry::parse("00400000-00401000 r-xp 00000000", 1).is_err());
    }

    #[test]
    fn reads_own_maps() {
        let maps = ProcessMaps::read(std::process::id()).unwrap();
        let here = reads_own_maps as fn() as usize as u64;
        let entry = maps.find(here).expect("our own code is mapped");
        assert!(entry.perms.execute);
        assert_eq!(
            entry.file_path().map(|p| p.to_path_buf()),
            Some(std::env::current_exe().unwrap())
        );
    }
}
