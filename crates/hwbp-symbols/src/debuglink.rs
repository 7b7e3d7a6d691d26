//! Separate debug files, found the way gdb finds them (gdb manual, "Debugging Information in
//! Separate Files"), without the network:
//!
//! 1. by build ID (the `NT_GNU_BUILD_ID` note): `DIR/.build-id/xx/rest.debug` under each
//!    global debug directory (default `/usr/lib/debug`), the debug file's own build ID checked;
//! 2. by `.gnu_debuglink` (a file name and the CRC-32 of the debug file, the zlib/IEEE
//!    polynomial): next to the binary, in its `.debug/` subdirectory, then
//!    `DIR/<binary's directory>/NAME` under each global debug directory; the CRC is checked;
//! 3. an existing debuginfod client cache (what `debuginfod-find` or gdb left there):
//!    `$DEBUGINFOD_CACHE_PATH/<build-id>/debuginfo`, else
//!    `$XDG_CACHE_HOME/debuginfod_client/...`, else `~/.cache/debuginfod_client/...`. Nothing
//!    is downloaded.
//!
//! ```no_run
//! use hwbp_symbols::debuglink::{find_debug_file, DebugSearch};
//! let elf = std::path::Path::new("/usr/bin/bash");
//! let data = std::fs::read(elf).unwrap();
//! if let Some(found) = find_debug_file(elf, &data, &DebugSearch::default()) {
//!     println!("{} ({:?})", found.path.display(), found.source);
//! }
//! ```

use std::path::{Path, PathBuf};

use object::Object;

/// How a module's DWARF was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebugSource {
    /// In the module itself.
    Embedded,
    /// `DIR/.build-id/xx/rest.debug`.
    BuildId,
    /// `.gnu_debuglink`, CRC checked.
    DebugLink,
    /// A debuginfod client cache entry.
    DebuginfodCache,
}

/// Where to look for separate debug files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugSearch {
    /// gdb's `debug-file-directory` list (default `/usr/lib/debug`).
    pub debug_dirs: Vec<PathBuf>,
    /// The debuginfod client cache (default from the environment, see the module docs).
    pub debuginfod_cache: Option<PathBuf>,
}

/// Overrides the global debug directories (`:`-separated, like gdb's `debug-file-directory`);
/// set and empty, no separate debug file is found at all (nor a debuginfod cache entry): how
/// tests see what a machine without `libc6-dbg` prints, without uninstalling it.
pub const DEBUG_DIRS_ENV: &str = "HWBP_DEBUG_FILE_DIRECTORY";

impl Default for DebugSearch {
    /// gdb's places: `/usr/lib/debug` and the debuginfod cache, unless [`DEBUG_DIRS_ENV`] says
    /// otherwise.
    fn default() -> Self {
        match std::env::var_os(DEBUG_DIRS_ENV) {
            Some(dirs) if dirs.is_empty() => DebugSearch {
                debug_dirs: Vec::new(),
                debuginfod_cache: None,
            },
            Some(dirs) => DebugSearch {
                debug_dirs: std::env::split_paths(&dirs).collect(),
                debuginfod_cache: default_debuginfod_cache(),
            },
            None => DebugSearch {
                debug_dirs: vec![PathBuf::from("/usr/lib/debug")],
                debuginfod_cache: default_debuginfod_cache(),
            },
        }
    }
}

/// `$DEBUGINFOD_CACHE_PATH`, `$XDG_CACHE_HOME/debuginfod_client` or
/// `$HOME/.cache/debuginfod_client` (debuginfod-client's order).
pub fn default_debuginfod_cache() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("DEBUGINFOD_CACHE_PATH")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("debuginfod_client")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/debuginfod_client")))
}

/// A separate debug file and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugFile {
    /// The file.
    pub path: PathBuf,
    /// Which rule found it.
    pub source: DebugSource,
}

/// Finds the separate debug file of `elf` (whose bytes are `data`), in gdb's order.
pub fn find_debug_file(elf: &Path, data: &[u8], search: &DebugSearch) -> Option<DebugFile> {
    let file = object::File::parse(data).ok()?;
    let build_id = file.build_id().ok().flatten().filter(|id| id.len() >= 2);
    if let Some(id) = build_id {
        let hex = to_hex(id);
        for dir in &search.debug_dirs {
            let path = dir
                .join(".build-id")
                .join(&hex[..2])
                .join(format!("{}.debug", &hex[2..]));
            if build_id_of(&path).as_deref() == Some(id) {
                return Some(DebugFile {
                    path,
                    source: DebugSource::BuildId,
                });
            }
        }
    }
    if let Ok(Some((name, crc))) = file.gnu_debuglink() {
        let name = String::from_utf8_lossy(name).into_owned();
        let dir = elf.parent().unwrap_or(Path::new("/"));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut candidates = vec![dir.join(&name), dir.join(".debug").join(&name)];
        for global in &search.debug_dirs {
            let relative = dir.strip_prefix("/").unwrap_or(&dir);
            candidates.push(global.join(relative).join(&name));
        }
        let own = std::fs::canonicalize(elf).ok();
        for path in candidates {
            if own.is_some() && std::fs::canonicalize(&path).ok() == own {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&path) {
                if crc32(&bytes) == crc {
                    return Some(DebugFile {
                        path,
                        source: DebugSource::DebugLink,
                    });
                }
            }
        }
    }
    if let (Some(id), Some(cache)) = (build_id, &search.debuginfod_cache) {
        let path = cache.join(to_hex(id)).join("debuginfo");
        if path.is_file() {
            return Some(DebugFile {
                path,
                source: DebugSource::DebuginfodCache,
            });
        }
    }
    None
}

fn build_id_of(path: &Path) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    file.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// Lower-case hex of a build ID, as in `.build-id` paths and debuginfod URLs.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-32 (IEEE 802.3 polynomial, reflected, as zlib's `crc32` and gdb's
/// `gnu_debuglink_crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(to_hex(&[0xab, 0x01]), "ab01");
    }
}
