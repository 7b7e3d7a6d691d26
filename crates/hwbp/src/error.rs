//! [`Error`]: one opaque error type for the facade, with a [`ErrorKind`] that says whose problem
//! it is (bad input to fix and retry, a permission, the kernel or the target) and a one-line
//! message that names what is wrong and what would work.
//!
//! Lower layers' errors are kept as the source chain, never re-exported as this crate's API.

use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request cannot work as given (a spec, a target, an option): fix it and run again.
    /// Refused before anything was armed; the target was not touched.
    BadInput,
    /// The kernel or ptrace refused for lack of privilege.
    Permission,
    /// The kernel refused or failed at run time (no free debug register, an I/O error).
    Kernel,
    /// The target went away or could not be controlled.
    Target,
    /// Writing output failed (a closed pipe is [`std::io::ErrorKind::BrokenPipe`] in the chain).
    Output,
}

/// An error of the facade: a kind, a one-line message and the lower layer's cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Bad input: `message` names what is wrong and what would work.
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadInput, message)
    }

    /// Wraps a lower layer's error, with `context` saying what was being done (empty to use
    /// the cause's own message).
    pub fn wrap(
        kind: ErrorKind,
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error {
            kind,
            message: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The kind of the I/O error behind this one, if an I/O error caused it (a closed pipe is
    /// [`std::io::ErrorKind::BrokenPipe`]).
    pub fn io_error_kind(&self) -> Option<std::io::ErrorKind> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|s| s as _);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                return Some(io.kind());
            }
            cause = error.source();
        }
        None
    }

    /// True for [`ErrorKind::BadInput`].
    pub fn is_bad_input(&self) -> bool {
        self.kind == ErrorKind::BadInput
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.message.is_empty()) {
            (Some(source), true) => write!(f, "{source}"),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        if self.message.is_empty() {
            // The message is the source's: do not show it twice.
            return self
                .source
                .as_deref()
                .and_then(|s| s.source())
                .map(|s| s as _);
        }
        self.source.as_deref().map(|s| s as _)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::wrap(ErrorKind::Output, "", error)
    }
}

impl From<hwbp_linux::Error> for Error {
    fn from(error: hwbp_linux::Error) -> Error {
        use hwbp_linux::ErrorKind as Linux;
        let kind = match error.kind() {
            Linux::PermissionDenied => ErrorKind::Permission,
            Linux::TargetGone => ErrorKind::Target,
            _ => ErrorKind::Kernel,
        };
        Error::wrap(kind, "", error)
    }
}

/// The facade's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_cause_without_context_prints_once() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let err = Error::from(io);
        assert_eq!(err.kind(), ErrorKind::Output);
        assert_eq!(err.to_string(), "broken pipe");
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(err.io_error_kind(), Some(std::io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn context_comes_first_and_the_cause_stays_in_the_chain() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let err = Error::wrap(ErrorKind::Permission, "cannot read /proc/1/mem", io);
        assert_eq!(err.to_string(), "cannot read /proc/1/mem");
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "permission denied"
        );
    }
}
