//! The end of a watched local's frame ([`ScopeEvent`], [`ScopeEnd`]): plain data the
//! locals' engine (`crate::local`) gives the sink, with its text and JSON lines.

use std::sync::Arc;

use crate::hit::{FrameRef, WatchId};
use crate::json;

/// How a watched frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeEnd {
    /// The function returned (the return breakpoint, with `rsp` back at the CFA).
    Returned,
    /// The thread was found above the frame, or in a new frame at its place, without the
    /// function having returned (`longjmp`, an exception).
    Abandoned,
    /// The thread exited with the frame live.
    ThreadExited,
}

impl ScopeEnd {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            ScopeEnd::Returned => "returned",
            ScopeEnd::Abandoned => "left-without-return",
            ScopeEnd::ThreadExited => "thread-exited",
        }
    }

    /// The end named `name` ([`ScopeEnd::name`]).
    pub fn from_name(name: &str) -> Option<ScopeEnd> {
        [
            ScopeEnd::Returned,
            ScopeEnd::Abandoned,
            ScopeEnd::ThreadExited,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }

    /// How `function`'s frame ended, in words: `recurse returned`.
    pub fn describe(self, function: &str) -> String {
        match self {
            ScopeEnd::Returned => format!("{function} returned"),
            ScopeEnd::Abandoned => format!("{function} was left without returning"),
            ScopeEnd::ThreadExited => "the thread exited".to_string(),
        }
    }
}

/// A scope event's text line (live, and read back from a recording).
pub(crate) fn scope_text(
    variable: &str,
    how: &str,
    instance: u64,
    tid: i32,
    (reported, hits): (u64, u64),
) -> String {
    format!(
        "{variable} left scope: {how} (frame {instance}, thread {tid}; {reported} reported of \
         {hits} accesses)"
    )
}

/// A watched local's frame ended: its watch instance is over.
#[derive(Debug, Clone)]
pub struct ScopeEvent {
    /// The watch.
    pub watch: WatchId,
    /// The expression as gdb names it (`b`).
    pub variable: Arc<str>,
    /// The function.
    pub function: String,
    /// The frame.
    pub frame: FrameRef,
    /// Process id.
    pub pid: i32,
    /// The frame's thread.
    pub tid: i32,
    /// Nanoseconds since arming.
    pub time_ns: u64,
    /// How it ended.
    pub ended: ScopeEnd,
    /// Accesses in this frame.
    pub hits: u64,
    /// Of those, the ones reported.
    pub reported: u64,
}

impl ScopeEvent {
    /// One text line: `b left scope: recurse returned (frame 1, thread 4102)`.
    pub fn text(&self) -> String {
        scope_text(
            &self.variable,
            &self.ended.describe(&self.function),
            self.frame.instance,
            self.tid,
            (self.reported, self.hits),
        )
    }

    /// One JSON object: `{"type":"scope","time_ns":..,"pid":..,"tid":..,"watch_id":..,
    /// "variable":"b","function":"recurse","frame":{"instance":1,"cfa":"0x..","address":
    /// "0x.."},"ended":"returned","hits":N,"reported":N}`.
    pub fn json_line(&self) -> String {
        let mut out = Vec::with_capacity(256);
        let mut o = json::Object::open(&mut out);
        o.str("type", "scope");
        o.u64("time_ns", self.time_ns);
        o.u64("pid", self.pid as u64);
        o.u64("tid", self.tid as u64);
        o.u64("watch_id", self.watch.index() as u64);
        o.str("variable", &self.variable);
        o.str("function", &self.function);
        {
            let mut f = json::Object::open(o.key("frame"));
            f.u64("instance", self.frame.instance);
            f.hex("cfa", self.frame.cfa);
            f.hex("address", self.frame.address);
            f.close();
        }
        o.str("ended", self.ended.name());
        o.u64("hits", self.hits);
        o.u64("reported", self.reported);
        o.close();
        String::from_utf8(out).expect("the JSON writer writes UTF-8")
    }
}
