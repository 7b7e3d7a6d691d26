//! Recordings: a watch run kept in a file to be read after the target is gone, and what
//! `hwbp report` makes of one.
//!
//! This module owns the recording file format (JSON Lines, versioned: see
//! `docs/recording-format.md`), its [`RecordingWriter`] and [`RecordingReader`], and the
//! reports computed from a recording ([`report`]: the tables `hwbp stat` prints, the timeline
//! of changes, folded stacks; [`html`]: the self-contained HTML picture).
//!
//! ```no_run
//! use hwbp::record::{Header, RecordingWriter, Target, WatchInfo};
//! let target = Target { kind: "process".into(), pid: Some(1234), ..Target::default() };
//! let header = Header::new(vec!["hwbp".into(), "record".into()], target, vec![]);
//! let mut writer = RecordingWriter::create("run.hwbp", &header)?;
//! writer.write_hit(&serde_json::json!({"type": "hit", "time_ns": 1, "pid": 1234,
//!     "tid": 1234, "comm": "prog", "watch": "counter"}))?;
//! writer.finish()?;
//! # Ok::<(), hwbp::record::RecordError>(())
//! ```

mod format;
pub mod html;
mod reader;
pub mod report;
mod writer;

pub use format::{
    Header, Hit, Member, Record, RecordedTotals, Summary, Target, ThreadName, WatchInfo,
    FORMAT_NAME, FORMAT_VERSION,
};
pub use reader::{Cut, Recording, RecordingReader, ScopeRecord};
pub use writer::{RecordingStats, RecordingWriter};

use std::path::PathBuf;

/// What can go wrong writing or reading a recording. Each message is one line saying what is
/// wrong and, where it helps, what would work.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an hwbp recording.
    #[error("{path}: not an hwbp recording: {what}")]
    NotARecording {
        /// The file.
        path: PathBuf,
        /// What the file looks like instead, and what would work.
        what: String,
    },
    /// The recording's major version is newer than this hwbp reads.
    #[error(
        "{path}: recording format version {found} is newer than this hwbp {ours} reads \
         (version {supported}): read it with the hwbp that wrote it ({writer}) or a newer one"
    )]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// The file's major version.
        found: u64,
        /// The version this hwbp reads.
        supported: u32,
        /// This hwbp's version.
        ours: &'static str,
        /// The `hwbp_version` of the writer.
        writer: String,
    },
    /// A complete line in the middle of the file is not a valid record.
    #[error("{path}: line {line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A value given to the writer is not the record it should be.
    #[error("cannot write {what}: {message}")]
    InvalidRecord {
        /// Which record.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, RecordError>;
