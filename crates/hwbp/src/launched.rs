//! What becomes of the command hwbp launched when a run ends, in both modes, however it ends
//! (the hit limit, the duration, the stop handle (Ctrl-C, SIGTERM), the sink's `Break`, a
//! target exec, an error): [`settle`] is the one place that decides.
//!
//! - The command ended by itself first: it was reaped, and is [`Fate::Exited`].
//! - Else, unless [`WatchOptions::keep_running`](crate::WatchOptions::keep_running), hwbp ends
//!   it and what it started with [`hwbp_linux::ending::end_command`] (`SIGTERM`, `SIGKILL` after
//!   [`END_GRACE`]) and waits for it: [`Fate::Ended`]. A command left behind would hold the
//!   terminal's pipe open (`$(hwbp ...)`, `hwbp ... | head` would never return), as perf and gdb
//!   also end the workload they started.
//! - With `keep_running` it is left running, detached (the mode has closed its events or
//!   restored its debug registers and detached from it before this is called): [`Fate::KeptRunning`],
//!   announced with [`Notice::CommandKeptRunning`]. It stays a child of this process: a
//!   library caller that outlives it may `waitpid` it.
//!
//! Processes hwbp attached to (`-p`, `-t`, CPUs) never come here: they are never ended.

use hwbp_linux::ending::{end_command, END_GRACE};
use hwbp_linux::launch::ProcessExit;

use crate::error::{Error, ErrorKind, Result};
use crate::sink::{HitSink, Notice};
use crate::summary::{CommandFate, Fate};

/// The fate of a command that exited by itself with `exit` (already reaped).
pub(crate) fn exited(pid: i32, exit: ProcessExit) -> CommandFate {
    CommandFate {
        pid,
        fate: Fate::Exited,
        status: Some(exit.to_string()),
        signal_sent: None,
    }
}

/// Decides what becomes of launched command `pid` at the end of a run; see the module docs.
/// `exit` is how it ended if the run saw it end (and reaped it). The command must no longer be
/// stopped by a tracer of this process.
pub(crate) fn settle(
    pid: i32,
    exit: Option<ProcessExit>,
    keep_running: bool,
    sink: &mut dyn HitSink,
) -> Result<CommandFate> {
    if let Some(exit) = exit {
        return Ok(exited(pid, exit));
    }
    if keep_running {
        // A notice the sink cannot print changes nothing for the command.
        let _ = sink.notice(&Notice::CommandKeptRunning { pid });
        return Ok(CommandFate {
            pid,
            fate: Fate::KeptRunning,
            status: None,
            signal_sent: None,
        });
    }
    let ended = match end_command(pid, END_GRACE) {
        Ok(ended) => ended,
        // Reaped already: it ended while the tracer detached from it (stop mode).
        Err(e) if e.errno == nix::errno::Errno::ECHILD => {
            return Ok(CommandFate {
                pid,
                fate: Fate::Exited,
                status: None,
                signal_sent: None,
            })
        }
        Err(e) => return Err(Error::wrap(ErrorKind::Target, "", e)),
    };
    Ok(match ended.signal {
        None => exited(pid, ended.exit),
        Some(signal) => CommandFate {
            pid,
            fate: Fate::Ended,
            status: Some(ended.exit.to_string()),
            signal_sent: Some(signal.as_str().to_owned()),
        },
    })
}
