//! [`RecordingReader`]: reads a recording record by record, up to its last complete line, and
//! tells whether it was cut; [`Recording`]: a whole recording in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    Header, Hit, Record, RecordError, Result, Summary, ThreadName, FORMAT_NAME, FORMAT_VERSION,
};

/// How a recording ended early: no summary record, or a partial last line (hwbp killed,
/// disk full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Complete hit records read.
    pub hits: u64,
    /// True when the summary record was read (the file then has only a partial last line).
    pub summary: bool,
    /// Bytes of the partial last line dropped (0 when the last line was complete).
    pub partial_bytes: usize,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut why = Vec::new();
        if !self.summary {
            why.push("no summary record".to_string());
        }
        if self.partial_bytes > 0 {
            why.push(format!(
                "a partial last line of {} bytes dropped",
                self.partial_bytes
            ));
        }
        write!(f, "cut after {} hits ({})", self.hits, why.join("; "))
    }
}

/// Reads a recording: [`RecordingReader::header`] at once, then [`Record`]s as an iterator,
/// then [`RecordingReader::cut`] says whether the file ended before its summary.
#[derive(Debug)]
pub struct RecordingReader<R> {
    input: R,
    path: PathBuf,
    header: Header,
    line_no: u64,
    hits: u64,
    summary_seen: bool,
    partial_bytes: usize,
    done: bool,
    line: Vec<u8>,
}

impl RecordingReader<BufReader<File>> {
    /// Opens `path` and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        RecordingReader::new(BufReader::with_capacity(256 * 1024, file), path)
    }
}

/// What a first line that is not a header looks like, in words, and what would work instead.
fn not_a_recording(first: &[u8], complete: bool) -> String {
    const HOW: &str = "hwbp report reads files written by `hwbp record -o FILE`";
    if first.is_empty() {
        return format!("the file is empty; {HOW}");
    }
    if first.starts_with(b"PERFILE2") {
        return format!("it is a perf.data file (read it with perf report); {HOW}");
    }
    let text = String::from_utf8_lossy(first);
    match serde_json::from_str::<Value>(text.trim_end()) {
        Ok(Value::Object(map)) => match map.get("type").and_then(Value::as_str) {
            Some("hit") | Some("summary") => format!(
                "its first line is a {:?} record, as `hwbp watch --json` prints, not a header; \
                 {HOW} (or put a header line first: see docs/recording-format.md)",
                map["type"].as_str().unwrap_or_default()
            ),
            Some("stat") => format!("it is `hwbp stat --json` output; {HOW}"),
            Some("header") => format!(
                "its header's format is {}, not \"{FORMAT_NAME}\"; {HOW}",
                map.get("format")
                    .map_or("missing".to_string(), Value::to_string)
            ),
            Some(other) => format!("its first record has type {other:?}, not \"header\"; {HOW}"),
            None => format!("its first line is a JSON object without a \"type\"; {HOW}"),
        },
        Ok(_) => format!("its first line is JSON but not an object; {HOW}"),
        Err(_) if !complete => format!("its first line is cut short or not JSON; {HOW}"),
        Err(_) => format!("its first line is not JSON; {HOW}"),
    }
}

impl<R: BufRead> RecordingReader<R> {
    /// Reads the header from `input`; `path` names the file in messages.
    pub fn new(mut input: R, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut first = Vec::new();
        // At most 16 MiB for a header: enough for any watch list, and a binary file without
        // newlines is not read whole to find out it is not a recording.
        (&mut input)
            .take(16 << 20)
            .read_until(b'\n', &mut first)
            .map_err(|source| RecordError::Io {
                path: path.clone(),
                source,
            })?;
        let complete = first.ends_with(b"\n");
        let not_rec = |first: &[u8]| RecordError::NotARecording {
            path: path.clone(),
            what: not_a_recording(first, complete),
        };
        let value: Value = serde_json::from_slice(&first).map_err(|_| not_rec(&first))?;
        let is_header = value.get("type").and_then(Value::as_str) == Some("header")
            && value.get("format").and_then(Value::as_str) == Some(FORMAT_NAME);
        if !is_header {
            return Err(not_rec(&first));
        }
        let version = value.get("version").and_then(Value::as_u64).unwrap_or(0);
        if version > u64::from(FORMAT_VERSION) {
            return Err(RecordError::NewerVersion {
                path,
                found: version,
                supported: FORMAT_VERSION,
                ours: env!("CARGO_PKG_VERSION"),
                writer: value
                    .get("hwbp_version")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
            });
        }
        let mut value = value;
        if let Value::Object(map) = &mut value {
            map.remove("type");
        }
        let header: Header = serde_json::from_value(value).map_err(|e| RecordError::Malformed {
            path: path.clone(),
            line: 1,
            message: format!("the header is not valid: {e}"),
        })?;
        Ok(RecordingReader {
            input,
            path,
            header,
            line_no: 1,
            hits: 0,
            summary_seen: false,
            partial_bytes: 0,
            done: false,
            line: Vec::new(),
        })
    }

    /// The header record.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// After the last record: how the file was cut, if it was (no summary, or a partial last
    /// line).
    pub fn cut(&self) -> Option<Cut> {
        if self.summary_seen && self.partial_bytes == 0 {
            None
        } else {
            Some(Cut {
                hits: self.hits,
                summary: self.summary_seen,
                partial_bytes: self.partial_bytes,
            })
        }
    }

    /// The next record, `None` at the end (or at a partial last line).
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if self.done {
                return Ok(None);
            }
            self.line.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.line)
                .map_err(|source| RecordError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                self.done = true;
                return Ok(None);
            }
            if !self.line.ends_with(b"\n") {
                // A line the writer did not finish: the file was cut here.
                self.partial_bytes = self.line.len();
                self.done = true;
                return Ok(None);
            }
            self.line_no += 1;
            let line = std::mem::take(&mut self.line);
            let text = &line[..line.len() - 1];
            if text.iter().all(u8::is_ascii_whitespace) {
                self.line = line;
                continue;
            }
            let record = self.parse(text);
            self.line = line;
            return record.map(Some);
        }
    }

    fn parse(&mut self, text: &[u8]) -> Result<Record> {
        let malformed = |message: String| RecordError::Malformed {
            path: self.path.clone(),
            line: self.line_no,
            message,
        };
        let mut value: Value =
            serde_json::from_slice(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let Some(map) = value.as_object_mut() else {
            return Err(malformed("not a JSON object".into()));
        };
        let kind = match map.remove("type") {
            Some(Value::String(kind)) => kind,
            _ => return Err(malformed("a record without a \"type\"".into())),
        };
        let record = match kind.as_str() {
            "hit" => {
                let hit: Hit = serde_json::from_value(value)
                    .map_err(|e| malformed(format!("not a valid hit: {e}")))?;
                self.hits += 1;
                Record::Hit(Box::new(hit))
            }
            "thread" => Record::Thread(
                serde_json::from_value::<ThreadName>(value)
                    .map_err(|e| malformed(format!("not a valid thread record: {e}")))?,
            ),
            "summary" => {
                let summary: Summary = serde_json::from_value(value)
                    .map_err(|e| malformed(format!("not a valid summary: {e}")))?;
                self.summary_seen = true;
                Record::Summary(summary)
            }
            "header" => return Err(malformed("a second header".into())),
            _ => {
                if let Value::Object(map) = &mut value {
                    map.insert("type".into(), Value::String(kind));
                }
                Record::Other(value)
            }
        };
        Ok(record)
    }
}

impl<R: BufRead> Iterator for RecordingReader<R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// A whole recording in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The file it was read from.
    pub path: PathBuf,
    /// The header.
    pub header: Header,
    /// The hits, in file order.
    pub hits: Vec<Hit>,
    /// Thread names.
    pub threads: Vec<ThreadName>,
    /// The summary, absent when the recording was cut before it.
    pub summary: Option<Summary>,
    /// How the file was cut, if it was.
    pub cut: Option<Cut>,
    /// Records of types this hwbp does not know, skipped.
    pub skipped: u64,
    /// The ends of watched locals' frames, in file order.
    pub scopes: Vec<ScopeRecord>,
}

/// The end of a watched local's frame, as `hwbp watch --json` prints it
/// ([`crate::ScopeEvent::json_line`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ScopeRecord {
    /// Nanoseconds since arming.
    pub time_ns: u64,
    /// Process id.
    pub pid: i32,
    /// The frame's thread.
    pub tid: i32,
    /// The watch's id in the header.
    pub watch_id: u32,
    /// The expression as gdb names it (`b`).
    pub variable: String,
    /// The function.
    pub function: String,
    /// The frame: `instance`, `cfa`, `address`.
    pub frame: serde_json::Value,
    /// How it ended: `returned`, `left-without-return`, `thread-exited`.
    pub ended: String,
    /// Accesses in the frame.
    pub hits: u64,
    /// Of those, the ones reported.
    pub reported: u64,
}

impl ScopeRecord {
    /// The line `hwbp watch` printed for it: `b left scope: recurse returned (frame 1, thread
    /// 4102; 4 reported of 4 accesses)`.
    pub fn text(&self) -> String {
        let how = crate::scope::ScopeEnd::from_name(&self.ended)
            .map_or_else(|| self.ended.clone(), |e| e.describe(&self.function));
        crate::scope::scope_text(
            &self.variable,
            &how,
            self.frame["instance"].as_u64().unwrap_or(0),
            self.tid,
            (self.reported, self.hits),
        )
    }
}

impl Recording {
    /// Reads the whole recording at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Recording> {
        Recording::from_reader(RecordingReader::open(path)?)
    }

    /// Reads the rest of `reader`.
    pub fn from_reader<R: BufRead>(mut reader: RecordingReader<R>) -> Result<Recording> {
        let mut hits = Vec::new();
        let mut threads = Vec::new();
        let mut summary = None;
        let mut skipped = 0;
        let mut scopes = Vec::new();
        while let Some(record) = reader.next_record()? {
            match record {
                Record::Hit(hit) => hits.push(*hit),
                Record::Thread(thread) => threads.push(thread),
                Record::Summary(s) => summary = Some(s),
                Record::Other(value) if value["type"] == "scope" => {
                    match serde_json::from_value::<ScopeRecord>(value) {
                        Ok(scope) => scopes.push(scope),
                        Err(_) => skipped += 1,
                    }
                }
                Record::Other(_) => skipped += 1,
            }
        }
        Ok(Recording {
            cut: reader.cut(),
            path: reader.path,
            header: reader.header,
            hits,
            threads,
            summary,
            skipped,
            scopes,
        })
    }

    /// The name of thread `tid`: its thread record, else the `comm` of its first hit.
    pub fn thread_name(&self, tid: i32) -> Option<&str> {
        self.threads
            .iter()
            .find(|t| t.tid == tid)
            .map(|t| t.name.as_str())
            .or_else(|| {
                self.hits
                    .iter()
                    .find(|h| h.tid == tid)
                    .map(|h| h.comm.as_str())
            })
    }
}
