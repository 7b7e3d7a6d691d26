//! [`RecordingWriter`]: writes a recording, one whole line per record, in batches.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::{Header, RecordError, Result, ThreadName, FORMAT_NAME};

/// Bytes buffered before a batch is written.
const BATCH_BYTES: usize = 64 * 1024;

/// Longest time a buffered record waits for its batch when more records come.
const BATCH_AGE: Duration = Duration::from_millis(200);

/// Writes a recording: the header at once, then hits, thread names and the summary, each
/// line whole. Lines are buffered and written in batches (64 KiB, or 200 ms after the first
/// buffered line, checked at each record; [`RecordingWriter::flush`] forces one), each batch in
/// one `write`, so a killed hwbp leaves whole lines and at most a partial last one, which the
/// reader drops and reports. [`RecordingWriter::finish`] writes what is left and fsyncs. A
/// writer dropped without `finish` writes what it buffered (no summary: the file reads as cut).
#[derive(Debug)]
pub struct RecordingWriter {
    file: Option<File>,
    path: PathBuf,
    buf: Vec<u8>,
    oldest: Option<Instant>,
    hits: u64,
    bytes: u64,
    summary: bool,
    hit_json: crate::hit_json::HitJsonWriter,
}

/// What [`RecordingWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingStats {
    /// Hit records.
    pub hits: u64,
    /// Bytes in the file.
    pub bytes: u64,
    /// True when the summary record was written.
    pub summary: bool,
}

impl RecordingWriter {
    /// Creates (or truncates) `path` and writes the header line to it.
    pub fn create(path: impl AsRef<Path>, header: &Header) -> Result<RecordingWriter> {
        let path = path.as_ref().to_path_buf();
        if header.format != FORMAT_NAME {
            return Err(RecordError::InvalidRecord {
                what: "the header",
                message: format!("its format is {:?}, not {FORMAT_NAME:?}", header.format),
            });
        }
        let file = File::create(&path).map_err(|source| RecordError::Io {
            path: path.clone(),
            source,
        })?;
        let mut writer = RecordingWriter {
            file: Some(file),
            path,
            buf: Vec::with_capacity(BATCH_BYTES * 2),
            oldest: None,
            hits: 0,
            bytes: 0,
            summary: false,
            hit_json: crate::hit_json::HitJsonWriter::new(),
        };
        writer.push("header", "the header", header)?;
        writer.flush()?;
        Ok(writer)
    }

    /// Appends one hit: anything that serializes to the hit object of `hwbp watch --json`
    /// (that crate's hit report, a [`super::Hit`], a `serde_json::Value`). A `"type"` field,
    /// if present, must be `"hit"`.
    pub fn write_hit<T: Serialize + ?Sized>(&mut self, hit: &T) -> Result<()> {
        self.push("hit", "a hit", hit)?;
        self.hits += 1;
        self.maybe_flush()
    }

    /// Appends one hit of the watcher, written by a [`crate::hit_json::HitJsonWriter`] (no value tree in
    /// between: this is the path `hwbp record` takes for every hit).
    pub fn write_hit_json(
        &mut self,
        hit: &crate::hit::Hit,
        watch: &crate::plan::PlannedWatch,
    ) -> Result<()> {
        if self.buf.is_empty() {
            self.oldest = Some(Instant::now());
        }
        self.hit_json.write(hit, watch, &mut self.buf);
        self.buf.push(b'\n');
        self.hits += 1;
        self.maybe_flush()
    }

    /// Appends the end of a watched local's frame: the object `hwbp watch --json` prints for
    /// it (`"type":"scope"`).
    pub fn write_scope(&mut self, event: &crate::scope::ScopeEvent) -> Result<()> {
        if self.buf.is_empty() {
            self.oldest = Some(Instant::now());
        }
        self.buf.extend_from_slice(event.json_line().as_bytes());
        self.buf.push(b'\n');
        self.maybe_flush()
    }

    /// Appends a thread's name.
    pub fn write_thread(&mut self, thread: &ThreadName) -> Result<()> {
        self.push("thread", "a thread name", thread)?;
        self.maybe_flush()
    }

    /// Appends the summary (the summary object of `hwbp watch --json`, or a
    /// [`super::Summary`]) and writes everything buffered.
    pub fn write_summary<T: Serialize + ?Sized>(&mut self, summary: &T) -> Result<()> {
        self.push("summary", "the summary", summary)?;
        self.summary = true;
        self.flush()
    }

    /// Hit records appended so far.
    pub fn hits_written(&self) -> u64 {
        self.hits
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the buffered lines now, in one `write`.
    pub fn flush(&mut self) -> Result<()> {
        self.oldest = None;
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let result = file.write_all(&self.buf);
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        result.map_err(|source| RecordError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Writes what is buffered, fsyncs the file and closes it.
    pub fn finish(mut self) -> Result<RecordingStats> {
        self.flush()?;
        let file = self.file.take().expect("file open until finish");
        file.sync_all().map_err(|source| RecordError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(RecordingStats {
            hits: self.hits,
            bytes: self.bytes,
            summary: self.summary,
        })
    }

    fn maybe_flush(&mut self) -> Result<()> {
        let old = self.oldest.is_some_and(|t| t.elapsed() >= BATCH_AGE);
        if self.buf.len() >= BATCH_BYTES || old {
            self.flush()?;
        }
        Ok(())
    }

    /// Serializes `value` as one line `{"type":KIND,...}` into the buffer.
    fn push<T: Serialize + ?Sized>(
        &mut self,
        kind: &str,
        what: &'static str,
        value: &T,
    ) -> Result<()> {
        let invalid = |message: String| RecordError::InvalidRecord { what, message };
        let value = serde_json::to_value(value).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(invalid(format!("it is not a JSON object: {value}")));
        };
        match map.get("type") {
            None => {}
            Some(Value::String(t)) if t == kind => {}
            Some(other) => return Err(invalid(format!("its type is {other}, not {kind:?}"))),
        }
        let mut line = Vec::with_capacity(512);
        // "type" first, so a line says what it is at a glance (and to grep).
        line.extend_from_slice(b"{\"type\":");
        serde_json::to_writer(&mut line, kind).map_err(|e| invalid(e.to_string()))?;
        for (key, value) in map.iter().filter(|(k, _)| *k != "type") {
            line.push(b',');
            serde_json::to_writer(&mut line, key).map_err(|e| invalid(e.to_string()))?;
            line.push(b':');
            serde_json::to_writer(&mut line, value).map_err(|e| invalid(e.to_string()))?;
        }
        line.extend_from_slice(b"}\n");
        if self.buf.is_empty() {
            self.oldest = Some(Instant::now());
        }
        self.buf.extend_from_slice(&line);
        Ok(())
    }
}

impl Drop for RecordingWriter {
    fn drop(&mut self) {
        // Best effort: keep what was buffered; without a summary the file reads as cut.
        let _ = self.flush();
    }
}
