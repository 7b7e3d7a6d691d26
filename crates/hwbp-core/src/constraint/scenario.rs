//! The scenario language of `hwbp constraints`: one command per line, run against a
//! [`ConstraintEngine`]. Pure (no I/O), so it can be fuzzed and tested without a process.
//!
//! ```text
//! # comment; blank lines are ignored; `#` starts a comment anywhere on a line
//! bp NAME cpu=<N|all> [task=TASK] [type=data|inst|r|w|rw|x|empty|invalid|<0-7>] [weight=W] [flexible]
//! del NAME
//! modify NAME type=<as above>
//! ```
//! Defaults: `type=data` (`HW_BREAKPOINT_RW`), `weight=1`, pinned. `inst` is `HW_BREAKPOINT_X`.
//! Task names are arbitrary tokens; each new one gets the next [`TaskId`].
//!
//! # Parse errors versus `EINVAL`
//! A line the language cannot read is a [`ParseError`] and the runner should stop: an unknown
//! command, a missing NAME, a NAME containing `=`, an unknown key (a typo such as `wieght=2`
//! must not silently mean something else), a repeated key, a value that is not a number / `all`
//! / a known type, `flexible=...`, a missing `cpu=` on `bp` or `type=` on `modify`, extra words
//! after `del NAME`.
//!
//! A line that reads fine but asks for something impossible is an outcome, `NAME EINVAL:
//! <reason>`, and the scenario goes on: `bp` with a NAME already registered, `del`/`modify` of
//! a NAME not registered (never created, refused, or deleted), `cpu=` at or beyond the CPU
//! count, `weight=0`, `cpu=all` without `task=`, and types `empty`/`invalid` (which the kernel
//! refuses with `EINVAL`). A refused NAME is not registered and may be used again.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::{
    BreakpointId, BreakpointRequest, ConstraintEngine, CpuTarget, EngineConfig, Refusal, TaskId,
};
use crate::BpType;

/// One parsed scenario line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioCommand<'a> {
    /// `bp NAME cpu=.. [task=..] [type=..] [weight=..] [flexible]`: reserve a breakpoint.
    Bp {
        /// The breakpoint's name in the scenario.
        name: &'a str,
        /// `cpu=N` or `cpu=all`.
        cpu: CpuTarget,
        /// `task=TASK`, if given.
        task: Option<&'a str>,
        /// `type=...`, default `HW_BREAKPOINT_RW`.
        bp_type: BpType,
        /// `weight=W`, default 1.
        weight: u32,
        /// `flexible` given.
        flexible: bool,
    },
    /// `del NAME`: release a breakpoint.
    Del {
        /// The breakpoint's name.
        name: &'a str,
    },
    /// `modify NAME type=...`: change a breakpoint's type.
    Modify {
        /// The breakpoint's name.
        name: &'a str,
        /// The new `bp_type`.
        bp_type: BpType,
    },
}

/// Which command a parse error was in, to show the right example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandWord {
    /// `bp`.
    Bp,
    /// `del`.
    Del,
    /// `modify`.
    Modify,
}

/// What is wrong with an unparsable line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The first word is not `bp`, `del` or `modify`.
    UnknownCommand(String),
    /// The command has no NAME.
    MissingName,
    /// The NAME contains `=` (probably the NAME was forgotten).
    NameWithEquals(String),
    /// A `key=` this command does not know.
    UnknownKey(String),
    /// The same key twice.
    RepeatedKey(String),
    /// A value that cannot be read for this key.
    BadValue {
        /// The key.
        key: String,
        /// What was given.
        value: String,
        /// What would work.
        expected: &'static str,
    },
    /// A required key is missing.
    MissingKey(&'static str),
    /// A word that is neither `key=value` nor a known flag, or extra words.
    UnexpectedWord(String),
}

/// An unparsable line: the scenario runner stops here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// The command it was in, if the first word was readable.
    pub command: Option<CommandWord>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseErrorKind::UnknownCommand(w) => {
                write!(f, "unknown command '{w}' (commands are bp, del, modify)")?
            }
            ParseErrorKind::MissingName => f.write_str("missing breakpoint NAME")?,
            ParseErrorKind::NameWithEquals(n) => write!(
                f,
                "'{n}' is not a breakpoint NAME (NAME comes first and has no '=')"
            )?,
            ParseErrorKind::UnknownKey(k) => write!(f, "unknown key '{k}'")?,
            ParseErrorKind::RepeatedKey(k) => write!(f, "key '{k}' given twice")?,
            ParseErrorKind::BadValue {
                key,
                value,
                expected,
            } => write!(f, "bad value '{value}' for {key}= (expected {expected})")?,
            ParseErrorKind::MissingKey(k) => write!(f, "missing {k}=")?,
            ParseErrorKind::UnexpectedWord(w) => write!(f, "unexpected '{w}'")?,
        }
        let example = match self.command {
            Some(CommandWord::Bp) | None => "bp NAME cpu=0 task=T1 type=data weight=1 flexible",
            Some(CommandWord::Del) => "del NAME",
            Some(CommandWord::Modify) => "modify NAME type=inst",
        };
        write!(f, "; expected e.g. '{example}'")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseError {}

const TYPE_VALUES: &str = "data, inst, r, w, rw, x, empty, invalid or a number 0-7";

fn parse_type(value: &str) -> Option<BpType> {
    Some(match value {
        "data" | "rw" => BpType::RW,
        "inst" | "x" => BpType::X,
        "r" => BpType::R,
        "w" => BpType::W,
        "empty" => BpType::EMPTY,
        "invalid" => BpType::INVALID,
        n => match n.parse::<u32>() {
            Ok(v) if v <= 7 => BpType(v),
            _ => return None,
        },
    })
}

/// Parses one line. `Ok(None)` for blank and comment-only lines.
pub fn parse_line(line: &str) -> Result<Option<ScenarioCommand<'_>>, ParseError> {
    let line = line.split_once('#').map_or(line, |(before, _)| before);
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    let command = match first {
        "bp" => CommandWord::Bp,
        "del" => CommandWord::Del,
        "modify" => CommandWord::Modify,
        other => {
            return Err(ParseError {
                kind: ParseErrorKind::UnknownCommand(other.to_string()),
                command: None,
            })
        }
    };
    let err = |kind| ParseError {
        kind,
        command: Some(command),
    };
    let name = words
        .next()
        .ok_or_else(|| err(ParseErrorKind::MissingName))?;
    if name.contains('=') {
        return Err(err(ParseErrorKind::NameWithEquals(name.to_string())));
    }

    let mut cpu = None;
    let mut task = None;
    let mut bp_type = None;
    let mut weight = None;
    let mut flexible = false;
    for word in words {
        if command == CommandWord::Del {
            return Err(err(ParseErrorKind::UnexpectedWord(word.to_string())));
        }
        let Some((key, value)) = word.split_once('=') else {
            if word == "flexible" && command == CommandWord::Bp {
                if flexible {
                    return Err(err(ParseErrorKind::RepeatedKey(word.to_string())));
                }
                flexible = true;
                continue;
            }
            return Err(err(ParseErrorKind::UnexpectedWord(word.to_string())));
        };
        let bad = |expected| {
            err(ParseErrorKind::BadValue {
                key: key.to_string(),
                value: value.to_string(),
                expected,
            })
        };
        let repeated = || err(ParseErrorKind::RepeatedKey(key.to_string()));
        match (command, key) {
            (CommandWord::Bp, "cpu") => {
                let parsed = if value == "all" {
                    CpuTarget::All
                } else {
                    CpuTarget::One(value.parse().map_err(|_| bad("a CPU number or 'all'"))?)
                };
                if cpu.replace(parsed).is_some() {
                    return Err(repeated());
                }
            }
            (CommandWord::Bp, "task") => {
                if value.is_empty() {
                    return Err(bad("a task name"));
                }
                if task.replace(value).is_some() {
                    return Err(repeated());
                }
            }
            (CommandWord::Bp, "weight") => {
                let parsed: u32 = value.parse().map_err(|_| bad("a number of slots"))?;
                if weight.replace(parsed).is_some() {
                    return Err(repeated());
                }
            }
            (CommandWord::Bp | CommandWord::Modify, "type") => {
                let parsed = parse_type(value).ok_or_else(|| bad(TYPE_VALUES))?;
                if bp_type.replace(parsed).is_some() {
                    return Err(repeated());
                }
            }
            (CommandWord::Bp, "flexible") => return Err(bad("no value: write just 'flexible'")),
            _ => return Err(err(ParseErrorKind::UnknownKey(key.to_string()))),
        }
    }
    Ok(Some(match command {
        CommandWord::Bp => ScenarioCommand::Bp {
            name,
            cpu: cpu.ok_or_else(|| err(ParseErrorKind::MissingKey("cpu")))?,
            task,
            bp_type: bp_type.unwrap_or(BpType::RW),
            weight: weight.unwrap_or(1),
            flexible,
        },
        CommandWord::Del => ScenarioCommand::Del { name },
        CommandWord::Modify => ScenarioCommand::Modify {
            name,
            bp_type: bp_type.ok_or_else(|| err(ParseErrorKind::MissingKey("type")))?,
        },
    }))
}

/// What happened to one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `bp` reserved, or `modify` done.
    Ok,
    /// `del` released the breakpoint.
    Released,
    /// The engine refused (`ENOSPC` or `EINVAL`); nothing changed.
    Refused(Refusal),
    /// `bp` with a NAME that is already registered (`EINVAL`).
    NameTaken,
    /// `del`/`modify` of a NAME that is not registered (`EINVAL`).
    UnknownName,
}

/// A scenario in progress: the engine plus the names given to breakpoints and tasks.
#[derive(Clone, Debug)]
pub struct Scenario {
    engine: ConstraintEngine,
    breakpoints: BTreeMap<String, BreakpointId>,
    task_ids: BTreeMap<String, TaskId>,
    task_names: Vec<String>,
}

impl Scenario {
    /// An empty scenario on a fresh engine.
    pub fn new(config: EngineConfig) -> Self {
        Scenario {
            engine: ConstraintEngine::new(config),
            breakpoints: BTreeMap::new(),
            task_ids: BTreeMap::new(),
            task_names: Vec::new(),
        }
    }

    /// The engine, for queries such as [`ConstraintEngine::free_slots`].
    pub fn engine(&self) -> &ConstraintEngine {
        &self.engine
    }

    /// The id a task name maps to, if it has appeared.
    pub fn task_id(&self, name: &str) -> Option<TaskId> {
        self.task_ids.get(name).copied()
    }

    fn intern_task(&mut self, name: &str) -> TaskId {
        if let Some(&id) = self.task_ids.get(name) {
            return id;
        }
        let id = TaskId(self.task_names.len() as u32);
        self.task_names.push(name.to_string());
        self.task_ids.insert(name.to_string(), id);
        id
    }

    /// Runs one parsed command.
    pub fn apply(&mut self, command: &ScenarioCommand<'_>) -> Outcome {
        match *command {
            ScenarioCommand::Bp {
                name,
                cpu,
                task,
                bp_type,
                weight,
                flexible,
            } => {
                if self.breakpoints.contains_key(name) {
                    return Outcome::NameTaken;
                }
                let task = task.map(|t| self.intern_task(t));
                let req = BreakpointRequest {
                    cpu,
                    task,
                    bp_type,
                    weight,
                    flexible,
                };
                match self.engine.reserve(&req) {
                    Ok(id) => {
                        self.breakpoints.insert(name.to_string(), id);
                        Outcome::Ok
                    }
                    Err(refusal) => Outcome::Refused(refusal),
                }
            }
            ScenarioCommand::Del { name } => match self.breakpoints.remove(name) {
                Some(id) => {
                    self.engine.release(id);
                    Outcome::Released
                }
                None => Outcome::UnknownName,
            },
            ScenarioCommand::Modify { name, bp_type } => match self.breakpoints.get(name) {
                Some(&id) => match self.engine.modify(id, bp_type) {
                    Ok(()) => Outcome::Ok,
                    Err(refusal) => Outcome::Refused(refusal),
                },
                None => Outcome::UnknownName,
            },
        }
    }

    /// Parses and runs one line: `Ok(None)` for blank/comment lines, otherwise the command's
    /// NAME and outcome.
    pub fn run_line<'l>(
        &mut self,
        line: &'l str,
    ) -> Result<Option<(&'l str, Outcome)>, ParseError> {
        let Some(command) = parse_line(line)? else {
            return Ok(None);
        };
        let name = match command {
            ScenarioCommand::Bp { name, .. }
            | ScenarioCommand::Del { name }
            | ScenarioCommand::Modify { name, .. } => name,
        };
        Ok(Some((name, self.apply(&command))))
    }

    /// The output line for an outcome: `NAME ok`, `NAME released`, `NAME ENOSPC: ...`,
    /// `NAME EINVAL: ...` (no newline), with the scenario's task names.
    pub fn report<'a>(&'a self, name: &'a str, outcome: &'a Outcome) -> OutcomeLine<'a> {
        OutcomeLine {
            scenario: self,
            name,
            outcome,
        }
    }
}

/// One output line of a scenario; see [`Scenario::report`].
pub struct OutcomeLine<'a> {
    scenario: &'a Scenario,
    name: &'a str,
    outcome: &'a Outcome,
}

impl fmt::Display for OutcomeLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name;
        match self.outcome {
            Outcome::Ok => write!(f, "{name} ok"),
            Outcome::Released => write!(f, "{name} released"),
            Outcome::NameTaken => write!(
                f,
                "{name} EINVAL: a breakpoint named {name} is already registered: \
                 del {name} first or pick another name"
            ),
            Outcome::UnknownName => write!(
                f,
                "{name} EINVAL: no breakpoint named {name} is registered \
                 (never created, refused, or deleted)"
            ),
            Outcome::Refused(refusal) => {
                let names = &self.scenario.task_names;
                let shown = refusal.display_with(|task: TaskId, f: &mut fmt::Formatter<'_>| {
                    match names.get(task.0 as usize) {
                        Some(n) => f.write_str(n),
                        None => write!(f, "#{}", task.0),
                    }
                });
                write!(f, "{name} {}: {shown}", refusal.errno())
            }
        }
    }
}
